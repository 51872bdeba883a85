//! A workspace per test: a temp dir with `recipes/` (a copy of the shipped ones unless the
//! test writes its own), `in/` for the drop and `out/`, and a way to run the real binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;

use serde_json::Value;

/// The flags every command takes to work on the test's workspace (`recipes/`, `out/`).
pub const WORKSPACE: [&str; 4] = ["--recipes", "recipes", "--out", "out"];

pub struct Workdir {
    pub dir: tempfile::TempDir,
}

pub struct RunResult {
    pub code: i32,
    pub json: Value,
    pub stderr: String,
}

impl RunResult {
    pub fn entity(&self, e: &str) -> &Value {
        &self.json["entities"][e]
    }
    /// (read, accepted, rejected, warnings, inserted, updated, unchanged, deleted)
    pub fn counts(&self, e: &str) -> [u64; 8] {
        let v = self.entity(e);
        [
            "read",
            "accepted",
            "rejected",
            "warnings",
            "inserted",
            "updated",
            "unchanged",
            "deleted",
        ]
        .map(|k| {
            v[k].as_u64()
                .unwrap_or_else(|| panic!("{e}.{k} missing in {v}"))
        })
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Workdir {
    pub fn new() -> Workdir {
        let w = Workdir {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(w.inbox()).unwrap();
        std::fs::create_dir_all(w.recipes()).unwrap();
        for e in std::fs::read_dir(repo().join("recipes")).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, w.recipes().join(p.file_name().unwrap())).unwrap();
        }
        w
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn inbox(&self) -> PathBuf {
        self.path().join("in")
    }
    pub fn out(&self) -> PathBuf {
        self.path().join("out")
    }
    pub fn recipes(&self) -> PathBuf {
        self.path().join("recipes")
    }

    /// Writes a file into the inbox as Windows-1252 with CRLF line ends.
    pub fn cp1252(&self, name: &str, text: &str) {
        let crlf = text.replace('\n', "\r\n");
        let (bytes, _, bad) = encoding_rs::WINDOWS_1252.encode(&crlf);
        assert!(!bad, "test text not representable in cp1252");
        std::fs::write(self.inbox().join(name), bytes).unwrap();
    }

    /// Writes a file into the inbox as UTF-8 with a BOM.
    pub fn utf8_bom(&self, name: &str, text: &str) {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(text.as_bytes());
        std::fs::write(self.inbox().join(name), bytes).unwrap();
    }

    pub fn utf8(&self, name: &str, text: &str) {
        std::fs::write(self.inbox().join(name), text).unwrap();
    }

    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.inbox().join(name));
    }

    /// `dropsync <args...>` on this workspace (`--recipes recipes --out out` appended).
    pub fn ws_cmd(&self, args: &[&str]) -> Output {
        self.cmd(&[args, &WORKSPACE[..]].concat())
    }

    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_dropsync"))
            .current_dir(self.path())
            .env("RUST_LOG", "warn")
            .args(args)
            .output()
            .unwrap()
    }

    /// `dropsync run --json` on the inbox; the exit code and the parsed object.
    pub fn run(&self) -> RunResult {
        self.run_with_env(&[])
    }

    pub fn run_with_env(&self, env: &[(&str, &str)]) -> RunResult {
        self.run_args(&[], env)
    }

    /// `dropsync run --json` on the workspace with `extra` flags (e.g. `--dry-run`).
    pub fn run_args(&self, extra: &[&str], env: &[(&str, &str)]) -> RunResult {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dropsync"));
        c.current_dir(self.path())
            .env("RUST_LOG", "warn")
            .args(["run", "--inbox", "in", "--json"])
            .args(WORKSPACE);
        c.args(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        RunResult {
            code: o.status.code().unwrap_or(-1),
            json,
            stderr,
        }
    }

    pub fn db(&self, name: &str) -> rusqlite::Connection {
        rusqlite::Connection::open(self.out().join(name)).unwrap()
    }

    /// Single value query.
    pub fn q<T: rusqlite::types::FromSql>(&self, db: &str, sql: &str) -> T {
        self.db(db).query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// All rows of a query, each as strings joined by `|`.
    pub fn rows(&self, db: &str, sql: &str) -> Vec<String> {
        rows_in(&self.out().join(db), sql)
    }
}

/// All rows of a query on the SQLite database at `db`, each as strings joined by `|`.
pub fn rows_in(db: &Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(x) => x.to_string(),
                rusqlite::types::ValueRef::Real(x) => x.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                rusqlite::types::ValueRef::Blob(_) => "<blob>".into(),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// Every table of the SQLite database at `db` but per-run bookkeeping (`runs`, `rejects`,
/// and `staged_hash_tokens`, the tokens naming the cached staged hashes, fresh each sync:
/// whether the cache was trusted right shows in the staging tables themselves), every column
/// but `skip`, row by row in ID order: what two workspaces must agree on.
pub fn sqlite_dump(db: &Path, skip: &[&str]) -> String {
    let tables = rows_in(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
    );
    let mut out = Vec::new();
    for t in tables {
        if t == "runs" || t == "rejects" || t == "staged_hash_tokens" {
            continue;
        }
        let cols: Vec<String> = rows_in(db, &format!("SELECT name FROM pragma_table_info('{t}')"))
            .into_iter()
            .filter(|c| !skip.contains(&c.as_str()))
            .map(|c| format!("\"{c}\""))
            .collect();
        let order = if cols.iter().any(|c| c == "\"id\"") {
            "id"
        } else {
            "1"
        };
        out.push(format!("== {t}"));
        out.extend(rows_in(
            db,
            &format!("SELECT {} FROM \"{t}\" ORDER BY {order}", cols.join(", ")),
        ));
    }
    out.join("\n")
}

/// A copy of the shipped recipes under `dir/recipes` with `target` appended to pipeline.toml
/// (e.g. [`postgres_target`], [`rest_target`]).
pub fn recipes_with(dir: &Path, target: &str) -> PathBuf {
    let r = dir.join("recipes");
    std::fs::create_dir_all(&r).unwrap();
    for e in std::fs::read_dir(repo().join("recipes")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, r.join(p.file_name().unwrap())).unwrap();
    }
    let mut pipeline = std::fs::read_to_string(r.join("pipeline.toml")).unwrap();
    pipeline.push_str(target);
    std::fs::write(r.join("pipeline.toml"), pipeline).unwrap();
    r
}

/// pipeline.toml's `[target]` for a PostgreSQL CRM (schema `crm`, staging schema `staging`).
pub fn postgres_target(url_env: &str) -> String {
    format!(
        "\n[target]\nkind = \"postgres\"\n[target.postgres]\nurl_env = \"{url_env}\"\nschema = \"crm\"\nstaging_schema = \"staging\"\n"
    )
}

/// pipeline.toml's `[target]` for a REST CRM at `base_url`, unthrottled for tests, plus
/// `extra` lines of `[target.rest]`.
pub fn rest_target(base_url: &str, token_env: &str, extra: &str) -> String {
    format!(
        "\n[target]\nkind = \"rest\"\n[target.rest]\nbase_url = \"{base_url}\"\ntoken_env = \"{token_env}\"\nmax_requests_per_second = 1000.0\n{extra}"
    )
}

/// `dropsync serve` on a free loopback port for `w`'s workspace: the process and its base
/// URL (no trailing slash), once it has said where it listens.
pub fn serve(w: &Workdir) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dropsync"))
        .current_dir(w.path())
        .env("RUST_LOG", "warn")
        .env_remove("DROPSYNC_SERVE_TOKEN")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(WORKSPACE)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("dropsync status page: ")
        .unwrap_or_else(|| panic!("serve printed {line:?}"))
        .trim_end_matches('/')
        .to_string();
    (child, url)
}

/// A small dealer drop with one example of every validation rule, lines known by hand.
pub fn write_small_drop(w: &Workdir) {
    w.cp1252(
        "sucursales.csv",
        "Código Sucursal;Nombre;Tipo;Dirección;Localidad;Provincia;Teléfono
SUC-01;Central;Sucursal;Av. Siempre Viva 1;Córdoba;Córdoba;(0351) 455-1234
TAL-01;Taller Norte;Taller;Ruta 9 km 5;Córdoba;Córdoba;
",
    );
    w.utf8_bom(
        "usuarios.csv",
        "Código;Nombre y Apellido;Email;Rol;Sucursal;Activo
V0001;José Núñez; JOSE@X.COM ;Vendedor;SUC-01;S
V0002;Ana Peña;ana@x.com;Asesor de Servicio;SUC-99;X
",
    );
    w.cp1252(
        "clientes.csv",
        "Nro Cliente; Razón Social / Nombre ;Tipo;CUIT/DNI;Email;Teléfono;Celular;Domicilio;Localidad;Provincia;Código Postal;Fecha Alta
000123;\"Núñez, José María\";Persona;20-12.345.678-9;A@B.COM ;(011) 4555-1234;;\"Calle 1; piso 2
Lote 3\";CABA;CABA;C1000;01/02/2020
124;Transportes del Sur S.R.L.;Empresa;30-11111111-1;;;;Ruta 8;Pilar;Buenos Aires;1629;99/99/2020
;Sin Id;Persona;;;;;;;;;
125;Dup A;Persona;;;;;;;;;
0125;Dup B;Persona;;;;;;;;;
",
    );
    w.cp1252(
        "ventas.csv",
        "Nro Operación;Fecha;Nro Cliente;Vendedor;Sucursal;Tipo;Importe Total;Moneda;Estado
OP-1;20/11/2026;123;V0001;SUC-01;0km;1.234.567,89;ARS;Facturada
OP-2;20/11/2026 14:30;124;V9999;;Usado;abc;USD;Reservada
OP-3;31/02/2026;123;;;0km;1,5;ARS;Entregada
OP-4;;123;;;0km;1,5;ARS;Entregada
OP-5;01/01/2026;125;;;0km;1,5;ARS;Entregada
OP-6;01/01/2026;999;;;0km;1,5;ARS;Entregada
",
    );
    std::fs::write(
        w.inbox().join("unidades.xml"),
        encoding_rs::WINDOWS_1252
            .encode(
                r#"<?xml version="1.0" encoding="Windows-1252"?>
<!DOCTYPE Unidades [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Unidades generado="2026-11-20T23:00:00">
  <Unidad id="U1">
    <VIN>8AJFB8CD0N1234567</VIN><Dominio>ab123cd</Dominio><Marca>Citroën &amp; Co</Marca>
    <Modelo>&xxe;</Modelo><Anio>2022</Anio><Km>35.400</Km>
    <Cliente>000123</Cliente><Venta/><Sucursal>SUC-01</Sucursal>
  </Unidad>
  <Unidad id="U2">
    <VIN>X</VIN><Cliente>777</Cliente>
  </Unidad>
</Unidades>
"#,
            )
            .0,
    )
    .unwrap();
    w.utf8(
        "servicios.csv",
        "Nro OT;Fecha Ingreso;Fecha Entrega;Nro Cliente;Unidad;Taller;Asesor;Tipo Servicio;Kilometraje;Importe;Estado
OT-1;01/11/2026;;123;U1;TAL-01;V0002;Service;35.400;12.500,50;Abierta
OT-2;01/11/2026;02/11/2026;123;U9;TAL-01;;Service;1;1;Cerrada
",
    );
}

/// `n` clean clients, IDs 1..=n, for guard and diff tests.
pub fn clients_csv(n: usize, skip: &[usize], changed_email: &[usize]) -> String {
    let mut s = String::from("Nro Cliente;Razón Social / Nombre;Tipo;CUIT/DNI;Email;Teléfono;Celular;Domicilio;Localidad;Provincia;Código Postal;Fecha Alta\n");
    for i in 1..=n {
        if skip.contains(&i) {
            continue;
        }
        let email = if changed_email.contains(&i) {
            format!("nuevo{i}@mail.com")
        } else {
            format!("cliente{i}@mail.com")
        };
        s.push_str(&format!(
            "{i:06};\"Pérez, Juan {i}\";Persona;20-{i:08}-1;{email};;;Calle {i};Rosario;Santa Fe;2000;01/01/2020\n"
        ));
    }
    s
}

/// Keeps the header and the first `keep` records of a `;` CSV file, cut at a record boundary
/// (quoted line breaks respected): a truncated export as a DMS would leave it.
pub fn keep_csv_records(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap();
    let cut = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(&bytes[..])
        .byte_records()
        .nth(keep)
        .map_or(bytes.len(), |r| {
            r.unwrap().position().unwrap().byte() as usize
        });
    std::fs::write(path, &bytes[..cut]).unwrap();
}

/// One request as [`receiver`] saw it.
pub struct Request {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub authorization: String,
    pub body: String,
}

/// An HTTP receiver on 127.0.0.1 (a Pushgateway's or an OpenLineage collector's stand-in) answering each request with the next status of `answers` (then
/// 200), and handing every request it read to the returned channel.
pub fn receiver(answers: Vec<u16>) -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            let (mut length, mut content_type, mut authorization) =
                (0usize, String::new(), String::new());
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse().unwrap(),
                    "content-type" => content_type = v.trim().to_string(),
                    "authorization" => authorization = v.trim().to_string(),
                    _ => {}
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = answers.next().unwrap_or(200);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = tx.send(Request {
                method,
                path,
                content_type,
                authorization,
                body: String::from_utf8(body).unwrap(),
            });
        }
    });
    (url, rx)
}

/// The first sample day's exports, copied into the workspace's inbox.
pub fn sample_drop(w: &Workdir) {
    for e in std::fs::read_dir(repo().join("samples/2026-11-20")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, w.inbox().join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// The entities of the shipped recipes, parents first.
pub const ENTITIES: [&str; 6] = [
    "clientes",
    "sucursales",
    "usuarios",
    "ventas",
    "unidades",
    "servicios",
];

/// A small seeded generator (xorshift): the same seed kills at the same moments.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A number from the environment (a seed, a count), or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A PostgreSQL target's CRM schema and the staging schema it also keeps, every row as JSON
/// without the run-id bookkeeping, in ID order: what two targets must agree on.
pub fn pg_dump(db: &dropsync_testkit::postgres::TestDb) -> String {
    let mut c = db.client();
    let tables: Vec<(String, String)> = c
        .query(
            "SELECT table_schema, table_name FROM information_schema.tables \
             WHERE table_schema IN ('crm', 'staging') ORDER BY 1, 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut out = Vec::new();
    for (schema, t) in tables {
        out.push(format!("== {schema}.{t}"));
        for r in c
            .query(
                &format!(
                    "SELECT (to_jsonb(x) - '_created_run' - '_updated_run' - '_deleted_run')::text FROM {schema}.\"{t}\" x ORDER BY id"
                ),
                &[],
            )
            .unwrap()
        {
            out.push(r.get(0));
        }
    }
    out.join("\n")
}
