//! Credentials: the key file named by an env var, turned into a yup-oauth2 authenticator,
//! wrapped so that a 401 from a Google API can force one fresh token.
//!
//! Tokens never leave this file except inside the `Authorization` header that the generated
//! hubs build; nothing here logs them, and no error quotes the key file's content.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use google_drive3::common::GetToken;
use yup_oauth2::authenticator::Authenticator;
use yup_oauth2::authorized_user::AuthorizedUserSecret;
use yup_oauth2::{
    AuthorizedUserAuthenticator, CustomHyperClientBuilder, ServiceAccountAuthenticator,
    ServiceAccountKey,
};

use super::Connector;

/// The two kinds of credential file we accept.
pub(crate) enum Key {
    /// A service-account key JSON (`"type": "service_account"`), as downloaded from the
    /// Cloud Console. Its `token_uri` says where tokens come from.
    ServiceAccount(Box<ServiceAccountKey>),
    /// An authorized-user file (`"type": "authorized_user"`, e.g. from `gcloud auth
    /// application-default login`): a refresh token for a person's account.
    AuthorizedUser(AuthorizedUserSecret),
}

impl Key {
    /// Who Google sees, for hints such as "share the folder with ...".
    pub(crate) fn principal(&self) -> String {
        match self {
            Key::ServiceAccount(k) => k.client_email.clone(),
            Key::AuthorizedUser(_) => "the account of the authorized-user file".to_owned(),
        }
    }
}

/// Parses a key file. The error text never quotes the file's content (it holds secrets):
/// only serde's "missing field" wording or a line and column.
pub(crate) fn parse_key(bytes: &[u8]) -> Result<Key, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(safe_json_error)?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .map(str::to_owned);
    let service_account = |value| {
        serde_json::from_value::<ServiceAccountKey>(value)
            .map(|k| Key::ServiceAccount(Box::new(k)))
            .map_err(safe_json_error)
    };
    match kind.as_deref() {
        Some("service_account") => service_account(value),
        None if value.get("private_key").is_some() => service_account(value),
        Some("authorized_user") => serde_json::from_value::<AuthorizedUserSecret>(value)
            .map(Key::AuthorizedUser)
            .map_err(safe_json_error),
        Some(other) => Err(format!(
            "its \"type\" is `{other}`, expected `service_account` or `authorized_user`"
        )),
        None => Err("it has neither \"type\" nor \"private_key\"".to_owned()),
    }
}

fn safe_json_error(e: serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field") {
        // "missing field `token_uri`": names a key, never a value.
        text.split(" at line").next().unwrap_or(&text).to_owned()
    } else {
        format!(
            "not valid key JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    }
}

/// Builds the authenticator over our own HTTP client, so it shares the TLS setup (and the
/// plain-HTTP permission for local test servers) with the API calls.
pub(crate) async fn authenticator(
    key: &Key,
    client: google_drive3::hyper_util::client::legacy::Client<Connector, String>,
    timeout: Duration,
) -> std::io::Result<Authenticator<Connector>> {
    let builder = CustomHyperClientBuilder::from(client);
    match key {
        Key::ServiceAccount(k) => {
            ServiceAccountAuthenticator::with_client((**k).clone(), builder)
                .with_timeout(timeout)
                .build()
                .await
        }
        Key::AuthorizedUser(s) => {
            AuthorizedUserAuthenticator::with_client(s.clone(), builder)
                .with_timeout(timeout)
                .build()
                .await
        }
    }
}

/// The hub's token source: the cached token normally, a freshly issued one right after the
/// call delegate saw a 401 (it sets `force_refresh`). yup-oauth2 alone would keep handing
/// out a cached token that the server has revoked until its own clock says it expired.
#[derive(Clone)]
pub(crate) struct TokenSource {
    pub(crate) auth: Authenticator<Connector>,
    pub(crate) force_refresh: Arc<AtomicBool>,
}

type TokenResult = Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>;

impl GetToken for TokenSource {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&str],
    ) -> Pin<Box<dyn Future<Output = TokenResult> + Send + 'a>> {
        Box::pin(async move {
            let token = if self.force_refresh.swap(false, Ordering::SeqCst) {
                tracing::debug!("requesting a new access token from the token endpoint");
                self.auth.force_refreshed_token(scopes).await
            } else {
                self.auth.token(scopes).await
            };
            match token {
                Ok(t) => Ok(t.token().map(str::to_owned)),
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// Why the key named by an env var could not be loaded; callers wrap it into their own
/// error, which names the component the key is for.
#[derive(Debug)]
pub(crate) enum KeyError {
    /// The variable is unset or empty.
    MissingEnv { var: String },
    /// The file it names cannot be read.
    Read {
        var: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a key we can use; `message` never quotes its content.
    Format { path: PathBuf, message: String },
}

/// Reads and parses the key file whose path is in env var `var`.
pub(crate) fn load_key(var: &str) -> Result<(PathBuf, Key), KeyError> {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| KeyError::MissingEnv {
            var: var.to_owned(),
        })?;
    let bytes = read_key(&path).map_err(|source| KeyError::Read {
        var: var.to_owned(),
        path: path.clone(),
        source,
    })?;
    let key = parse_key(&bytes).map_err(|message| KeyError::Format {
        path: path.clone(),
        message,
    })?;
    Ok((path, key))
}

fn read_key(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_key_is_recognised() {
        let json = br#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "client_email":"robot@example.iam.gserviceaccount.com","token_uri":"http://127.0.0.1:1/token"}"#;
        match parse_key(json) {
            Ok(Key::ServiceAccount(k)) => {
                assert_eq!(k.client_email, "robot@example.iam.gserviceaccount.com");
                assert_eq!(k.token_uri, "http://127.0.0.1:1/token");
            }
            _ => panic!("expected a service-account key"),
        }
    }

    #[test]
    fn authorized_user_file_is_recognised() {
        let json = br#"{"type":"authorized_user","client_id":"id","client_secret":"s","refresh_token":"r"}"#;
        let key = parse_key(json).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(key, Key::AuthorizedUser(_)));
        assert!(key.principal().contains("authorized-user"));
    }

    #[test]
    fn errors_never_quote_secrets() {
        let missing =
            br#"{"type":"service_account","private_key":"SECRET-VALUE","client_email":"a@b"}"#;
        let e = parse_key(missing).err().expect("token_uri is required");
        assert!(e.contains("token_uri"), "{e}");
        assert!(!e.contains("SECRET"), "{e}");

        let wrong_type = br#"{"type":"service_account","private_key":"SECRET-VALUE","client_email":7,"token_uri":"x"}"#;
        let e = parse_key(wrong_type)
            .err()
            .expect("client_email must be a string");
        assert!(!e.contains("SECRET"), "{e}");

        let not_json = b"SECRET-VALUE";
        let e = parse_key(not_json).err().expect("not JSON");
        assert!(!e.contains("SECRET"), "{e}");

        let other = br#"{"type":"external_account"}"#;
        let e = parse_key(other).err().expect("unsupported type");
        assert!(e.contains("external_account"), "{e}");
    }
}
