//! `dropsync serve` in a real headless browser: Debian's Chromium driven through ChromeDriver
//! (WebDriver) by fantoccini. The runs come from the real binary on the shipped samples; the
//! test reads the page as an operator would, filters the rejects, and clicks Approve.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages `chromium` and
//! `chromium-driver`, installed by `.ci/run`). Set `DROPSYNC_SCREENSHOT_DIR` to keep the
//! screenshot of the run page (the README's picture comes from there).

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use support::Workdir;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child process killed when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn copy_drop(from: &Path, to: &Path) {
    for e in std::fs::read_dir(to).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "csv" || x == "xml") {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// `dropsync serve` on a free port; returns the process and its base URL.
fn serve(w: &Workdir) -> (Proc, String) {
    let (child, url) = support::serve(w);
    (Proc(child), url)
}

fn chromedriver() -> (Proc, String) {
    assert!(
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
        "the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

fn capabilities(profile: &Path) -> serde_json::Map<String, serde_json::Value> {
    // Without the background-networking flags Chromium keeps calling Google's hosts, which a
    // closed network refuses; a fresh profile keeps runs independent.
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1100",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    caps.as_object().unwrap().clone()
}

/// The text of the first element matching `css`.
async fn text(c: &fantoccini::Client, css: &str) -> String {
    let found = c.find(Locator::Css(css)).await;
    let found = found.unwrap_or_else(|e| panic!("{css}: {e}"));
    found.text().await.unwrap()
}

async fn click(c: &fantoccini::Client, css: &str) {
    let found = c.find(Locator::Css(css)).await;
    found
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The top of the first element matching `css`, in page coordinates (px from the top of the
/// document, whatever the scroll position).
async fn top(c: &fantoccini::Client, css: &str) -> f64 {
    let y = c
        .execute(
            "const e = document.querySelector(arguments[0]);
             return e ? e.getBoundingClientRect().top + window.scrollY : null;",
            vec![json!(css)],
        )
        .await
        .unwrap();
    y.as_f64()
        .unwrap_or_else(|| panic!("{css}: not on the page"))
}

/// `(document scrollWidth, its clientWidth, window innerWidth)`: the page scrolls sideways
/// when the first is larger than the second.
async fn widths(c: &fantoccini::Client) -> (u64, u64, u64) {
    let w = c
        .execute(
            "const d = document.documentElement;
             return [d.scrollWidth, d.clientWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    let n = |i: usize| w[i].as_u64().unwrap();
    (n(0), n(1), n(2))
}

/// Waits for the page (after a click) that has `css`, then returns its text.
async fn wait_text(c: &fantoccini::Client, css: &str) -> String {
    let found = c.wait().for_element(Locator::Css(css)).await;
    found
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

#[test]
fn operator_reads_the_run_filters_rejects_and_approves_held_deletes_in_a_browser() {
    let w = Workdir::new();
    let samples = support::repo().join("samples");
    copy_drop(&samples.join("2026-11-20"), &w.inbox());
    assert_eq!(w.run().code, 0);
    copy_drop(&samples.join("2026-11-21"), &w.inbox());
    let day2 = w.run();
    assert_eq!(day2.code, 0, "{}", day2.stderr);
    let day2_id = day2.json["run_id"].as_str().unwrap().to_string();
    // The next night's clientes export breaks off after 100 rows: the guard holds.
    let full = std::fs::read(samples.join("2026-11-21/clientes.csv")).unwrap();
    let cut: Vec<&[u8]> = full.split(|b| *b == b'\n').take(101).collect();
    for e in std::fs::read_dir(w.inbox()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    std::fs::write(w.inbox().join("clientes.csv"), cut.join(&b'\n')).unwrap();
    let held = w.run();
    assert_eq!(held.code, 3, "{}", held.stderr);
    let held_id = held.json["run_id"].as_str().unwrap().to_string();
    let held_n = held.entity("clientes")["held_deletes"].as_u64().unwrap();
    assert!(held_n > 100);

    // A reject the page must show with its line: the first `ventas` reject of day 2.
    let (reject_line, reject_rule): (i64, String) = w
        .db("staging.sqlite")
        .query_row(
            "SELECT line, rule FROM rejects WHERE run_id = ?1 AND entity = 'ventas'
             AND severity = 'error' ORDER BY file, line, rowid LIMIT 1",
            [&day2_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let live_before: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE _deleted = 0",
    );

    let (_server, base) = serve(&w);
    let (_driver, driver_url) = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities(profile.path()))
            .connect(&driver_url)
            .await
            .expect("a Chromium session through chromedriver");

        // Runs list → day 2's run.
        c.goto(&format!("{base}/")).await.unwrap();
        let status = text(
            &c,
            &format!("table#runs tr[data-run='{held_id}'] [data-status]"),
        )
        .await;
        assert_eq!(status, "held");
        c.find(Locator::LinkText(&day2_id))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, "table#entities").await;

        // The page's counts are the run's counts.
        for entity in ["clientes", "ventas", "servicios"] {
            let row = format!("data-entity='{entity}'");
            for key in [
                "read", "accepted", "rejected", "inserted", "updated", "deleted",
            ] {
                let shown = text(&c, &format!("table#entities tr[{row}] td.{key}")).await;
                assert_eq!(
                    shown,
                    day2.entity(entity)[key].to_string(),
                    "{entity}.{key} on the run page"
                );
            }
        }
        // Whole inserted rows, and updated rows as field: before -> after.
        let samples = &day2.json["samples"]["clientes"];
        let inserted = text(
            &c,
            "[data-samples='clientes'] table.sample[data-kind='inserted']",
        )
        .await;
        let first_id = samples["inserted_rows"][0]["id"].as_str().unwrap();
        let first_name = samples["inserted_rows"][0]["nombre"].as_str().unwrap();
        assert!(
            inserted.contains(first_id) && inserted.contains(first_name),
            "{inserted}"
        );
        let updated = text(&c, "[data-samples='clientes'] li").await;
        let (field, change) = samples["updated"][0]["changes"]
            .as_object()
            .unwrap()
            .iter()
            .next()
            .unwrap();
        assert!(
            updated.contains(&format!("{field}: {}", change.as_str().unwrap())),
            "{updated}"
        );
        // What an operator acts on comes first: the held deletes, then the rejects counted by
        // rule, both above the per-entity counts and the first change sample (the issue found
        // the rejects ~3,500 px down, after every sample).
        let held_y = top(&c, "h2#held-title").await;
        let summary_y = top(&c, "table#reject-summary").await;
        let entities_y = top(&c, "table#entities").await;
        let sample_y = top(&c, "table.sample").await;
        let listing_y = top(&c, "table#rejects").await;
        assert!(
            held_y < summary_y && summary_y < entities_y && entities_y < sample_y,
            "held {held_y}, rejects by rule {summary_y}, entities {entities_y}, first sample {sample_y}"
        );
        assert!(sample_y < listing_y, "the full listing stays last");
        assert!(
            summary_y < 1100.0,
            "the rejects by rule show without scrolling: {summary_y}"
        );
        let summary = text(
            &c,
            &format!("table#reject-summary tr[data-entity='ventas'][data-rule='{reject_rule}']"),
        )
        .await;
        assert!(summary.contains(&reject_rule), "{summary}");
        // Wide tables scroll in their own box; the page never scrolls sideways.
        let (scroll_w, client_w, inner_w) = widths(&c).await;
        assert_eq!(inner_w, 1400, "the window is 1400 px wide");
        assert!(
            scroll_w <= client_w && client_w <= inner_w,
            "the page is {scroll_w} px wide in a {client_w} px viewport ({inner_w} px window)"
        );
        if let Some(dir) = std::env::var_os("DROPSYNC_SCREENSHOT_DIR") {
            let png = c.screenshot().await.unwrap();
            assert_eq!(&png[..4], b"\x89PNG");
            std::fs::write(Path::new(&dir).join("run-page.png"), png).unwrap();
        }

        // Filter the rejects to ventas and that rule: the reject is there with its line.
        c.find(Locator::Css("form#reject-filter select[name='entity']"))
            .await
            .unwrap()
            .select_by_value("ventas")
            .await
            .unwrap();
        c.find(Locator::Css("form#reject-filter select[name='rule']"))
            .await
            .unwrap()
            .select_by_value(&reject_rule)
            .await
            .unwrap();
        click(&c, "form#reject-filter button").await;
        // The reloaded page is the one whose entity filter is set.
        wait_text(
            &c,
            "form#reject-filter select[name='entity'] option[value='ventas'][selected]",
        )
        .await;
        let url = c.current_url().await.unwrap();
        assert!(url.as_str().contains("entity=ventas"), "{url}");
        let rows = c.find_all(Locator::Css("table#rejects tr")).await.unwrap();
        let mut lines = Vec::new();
        for r in rows.iter().skip(1) {
            let tds = r.find_all(Locator::Css("td")).await.unwrap();
            assert_eq!(tds[0].text().await.unwrap(), "ventas");
            assert_eq!(tds[5].text().await.unwrap(), reject_rule);
            lines.push(tds[2].text().await.unwrap());
        }
        assert!(
            lines.contains(&reject_line.to_string()),
            "line {reject_line} in {lines:?}"
        );

        // The same rows from the summary: its link filters the listing to that rule.
        c.goto(&format!("{base}/runs/{day2_id}")).await.unwrap();
        click(
            &c,
            &format!("table#reject-summary tr[data-entity='ventas'][data-rule='{reject_rule}'] a"),
        )
        .await;
        wait_text(
            &c,
            "form#reject-filter select[name='rule'] option[selected]:not([value=''])",
        )
        .await;
        let url = c.current_url().await.unwrap();
        assert!(
            url.as_str().contains("entity=ventas") && url.fragment() == Some("rejects-title"),
            "{url}"
        );
        let rows = c.find_all(Locator::Css("table#rejects tr")).await.unwrap();
        let mut linked = Vec::new();
        for r in rows.iter().skip(1) {
            let tds = r.find_all(Locator::Css("td")).await.unwrap();
            assert_eq!(tds[0].text().await.unwrap(), "ventas");
            assert_eq!(tds[5].text().await.unwrap(), reject_rule);
            linked.push(tds[2].text().await.unwrap());
        }
        assert_eq!(linked, lines, "the summary's link lists what the filter form does");

        // The held run: its count, then Approve, above the rejects by rule.
        c.goto(&format!("{base}/runs/{held_id}")).await.unwrap();
        let held_text = text(&c, "[data-held='clientes']").await;
        assert!(
            held_text.contains(&format!("{held_n} deletes held")),
            "{held_text}"
        );
        let approve_y = top(&c, "form#approve").await;
        let summary_y = top(&c, "h2#reject-summary-title").await;
        assert!(
            approve_y < summary_y,
            "Approve {approve_y} above the rejects by rule {summary_y}"
        );
        click(&c, "form#approve button").await;
        let notice = wait_text(&c, "#approved").await;
        assert!(
            notice.contains(&format!("{held_n} held deletes applied")),
            "{notice}"
        );
        assert!(
            c.find(Locator::Css("form#approve")).await.is_err(),
            "nothing left to approve"
        );
        c.close().await.unwrap();
    });

    let live_after: i64 = w.q(
        "crm.sqlite",
        "SELECT count(*) FROM clientes WHERE _deleted = 0",
    );
    assert_eq!(live_after, live_before - held_n as i64);
    let status: String = w.q(
        "state/state.sqlite",
        &format!("SELECT status FROM runs WHERE run_id = '{held_id}'"),
    );
    assert_eq!(status, "approved");
}
