//! What every HTTP client in dropsync shares: the process-wide rustls crypto provider that
//! reqwest's `rustls-no-provider` needs, and URLs made safe to print.
//!
//! A webhook URL (Slack, Teams) *is* a secret: whoever has its path can post to the channel.
//! A base URL may carry `user:password@`. Errors and logs therefore show only
//! `scheme://host[:port]/…` ([`redact_url`]), and reqwest errors, which embed the URL they
//! failed on, are stripped of it ([`error_text`]).

use std::sync::Once;

use reqwest::Url;

/// Installs rustls' `ring` provider as the process default unless one is installed already.
/// Idempotent and cheap: `main` calls it at start, and so does every place that builds an
/// HTTP client, so library users (tests, tools) never hit reqwest's "no crypto provider"
/// panic either.
pub fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // An Err means another thread installed one meanwhile: that one is used, fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// `scheme://host[:port]/…`: what may be shown of a URL. Userinfo, path, query and fragment
/// are dropped (`/` is kept when there was nothing else); a string that does not parse as a
/// URL with a host shows only its scheme, if any.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        Ok(url) if url.host_str().is_some() => {
            let host = url.host_str().unwrap_or_default();
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = url.path().len() > 1 || url.query().is_some() || url.fragment().is_some();
            format!(
                "{}://{host}{port}/{}",
                url.scheme(),
                if hidden { "…" } else { "" }
            )
        }
        _ => match raw.split_once("://") {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                format!("{scheme}://…")
            }
            _ => "(not a URL; not shown)".to_string(),
        },
    }
}

/// `text` with every secret part of `raw` taken out: the URL itself (as written and as
/// normalised) becomes [`redact_url`]'s form, then any leftover userinfo, password, path or
/// query is replaced by `…`. For messages built from foreign errors that may quote the URL.
pub fn scrub(text: &str, raw: &str) -> String {
    let raw = raw.trim();
    if raw.is_empty() {
        return text.to_string();
    }
    let shown = redact_url(raw);
    let mut out = text.replace(raw, &shown);
    if let Ok(url) = Url::parse(raw) {
        out = out.replace(url.as_str(), &shown);
        let mut secrets: Vec<String> = Vec::new();
        if let Some(password) = url.password() {
            secrets.push(format!("{}:{password}@", url.username()));
            secrets.push(password.to_string());
        } else if !url.username().is_empty() {
            secrets.push(format!("{}@", url.username()));
        }
        if url.path().len() > 1 {
            secrets.push(url.path().to_string());
        }
        if let Some(q) = url.query().filter(|q| !q.is_empty()) {
            secrets.push(q.to_string());
        }
        for s in secrets {
            out = out.replace(&s, "…");
        }
    }
    out
}

/// A reqwest error and its causes on one line (reqwest's own message hides "timed out" or
/// "connection refused" in its sources), without the URL reqwest embeds in it
/// (`error sending request for url (…)`), further scrubbed of `raw_url`'s secret parts.
pub fn error_text(error: reqwest::Error, raw_url: &str) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    scrub(&text, raw_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_scheme_host_and_port_only() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret-token-XYZ"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:hunter2@127.0.0.1:9/api"),
            "http://127.0.0.1:9/…"
        );
        assert_eq!(
            redact_url("https://crm.example.com/"),
            "https://crm.example.com/"
        );
        assert_eq!(
            redact_url("https://crm.example.com?k=s3"),
            "https://crm.example.com/…"
        );
        assert_eq!(redact_url("http://[::1]:8080/x"), "http://[::1]:8080/…");
        assert_eq!(redact_url("weird://"), "weird://…");
        assert_eq!(redact_url("secret-token-XYZ"), "(not a URL; not shown)");
    }

    #[test]
    fn scrub_takes_every_secret_part_out_of_a_message() {
        let raw = "http://user:hunter2@127.0.0.1:9/api/secret-token-XYZ?key=k3y";
        let text = format!(
            "failed for url ({raw}); retrying http://user:hunter2@127.0.0.1:9/api/secret-token-XYZ?key=k3y then hunter2 /api/secret-token-XYZ key=k3y"
        );
        let clean = scrub(&text, raw);
        for secret in ["hunter2", "secret-token-XYZ", "k3y", "user:"] {
            assert!(!clean.contains(secret), "{secret} in {clean}");
        }
        assert!(clean.contains("http://127.0.0.1:9/…"), "{clean}");
    }

    #[test]
    fn the_provider_is_installed_once_and_again_is_harmless() {
        ensure_crypto_provider();
        ensure_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
