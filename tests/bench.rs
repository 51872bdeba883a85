//! `dropsync bench` end to end on a tiny size: it must produce the table with the three runs,
//! the baseline ratio, and exact CRM write counts (timings are printed, never asserted).

mod support;

/// `dropsync bench ARGS` into the workspace's `bw/`, its report's text.
fn bench(w: &support::Workdir, args: &[&str]) -> String {
    let common = ["--dir", "bw", "--recipes", "recipes", "--report", "r.md"];
    let o = w.cmd(&[&["-q", "bench"], args, &common[..]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(w.path().join("r.md")).unwrap()
}

#[test]
fn bench_prints_three_runs_and_the_baseline_ratio() {
    let w = support::Workdir::new();
    let text = bench(&w, &["--sizes", "200"]);
    let row = |label: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.contains(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("no {label} row in {text}"))
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    // Column 9 is "CRM rows written".
    let first = row("first load");
    let rows: usize = first[2].parse().unwrap();
    assert_eq!(
        first[9].parse::<usize>().unwrap(),
        rows,
        "a clean first load writes every row"
    );
    assert_eq!(row("identical rerun")[9], "0");
    let changed: usize = row("1% changes")[9].parse().unwrap();
    let m = dropsync::app::gen::Manifest::load(&w.path().join("bw/n200/day2")).unwrap();
    let want: usize = m
        .changes
        .unwrap()
        .values()
        .map(|c| c.inserted + c.updated + c.deleted)
        .sum();
    assert_eq!(changed, want, "exactly the changed rows are written");
    assert!(text.contains("ratio rerun / baseline"));
    assert!(text.contains("ratio identical / baseline"));
    let ratio_row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("| 200 |") && l.split('|').count() == 12)
        .unwrap_or_else(|| panic!("no ratio row in {text}"))
        .split('|')
        .map(str::trim)
        .collect();
    for cell in &ratio_row[2..11] {
        let v: f64 = cell
            .parse()
            .unwrap_or_else(|_| panic!("{cell:?} in {ratio_row:?}"));
        assert!(v.is_finite() && v > 0.0, "{ratio_row:?}");
    }
}

/// `bench --dealers N`: each size also run as N tenants at once; the CRM rows every wave
/// wrote are exact (all rows, then the generator's changes, then nothing).
#[test]
fn bench_runs_many_dealers_at_once_and_writes_exactly_their_changes() {
    let w = support::Workdir::new();
    let text = bench(&w, &["--sizes", "150", "--dealers", "3"]);
    assert!(
        text.contains("| N clients | tenants | runs at a time |"),
        "{text}"
    );
    let row: Vec<String> = text
        .lines()
        .find(|l| l.starts_with("| 150 | 3 |"))
        .unwrap_or_else(|| panic!("no dealers row in {text}"))
        .split('|')
        .map(|c| c.trim().to_string())
        .collect();
    let written: Vec<u64> = row[10].split(" / ").map(|n| n.parse().unwrap()).collect();
    let mut first_rows = 0u64;
    let mut changes = 0u64;
    for i in 0..3 {
        let dir = w.path().join(format!("bw/dealers-n150/dealer-{i:03}"));
        let day1 = dropsync::app::gen::Manifest::load(&dir.join("day1")).unwrap();
        first_rows += day1.entities.values().map(|e| e.rows as u64).sum::<u64>();
        let day2 = dropsync::app::gen::Manifest::load(&dir.join("day2")).unwrap();
        changes += day2
            .changes
            .unwrap()
            .values()
            .map(|c| (c.inserted + c.updated + c.deleted) as u64)
            .sum::<u64>();
    }
    assert_eq!(written, [first_rows, changes, 0], "{text}");
    assert_eq!(row[11].parse::<u64>().unwrap(), changes);
    for cell in [&row[4], &row[6], &row[8]] {
        assert!(cell.parse::<f64>().unwrap() > 0.0, "{cell}");
    }
}
