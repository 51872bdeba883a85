//! Issue #15: a run holds one entity's rows at a time. Each entity's frames go once it is
//! journaled and handed to staging's thread (the CRM stage reads its writes back from the
//! journal, one entity at a time), so a drop of eight equal entities needs about the memory
//! of two, not eight times one.
//!
//! Measured as the bytes the run holds at its peak, counted by this test binary's own
//! allocator around an in-process run: what the program keeps alive, whatever malloc does
//! with freed pages (the process's RSS figure is left to the benchmark).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dropsync::app::run::{run, RunOptions};
use support::{clients_csv, Workdir};

/// The system allocator, counting the bytes held now and at the peak.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A workspace whose recipes are `copies` copies of the clients recipe (entities `copia1`,
/// `copia2`, ..., no references between them), each with its own file of `rows` clients.
fn workspace(copies: usize, rows: usize) -> Workdir {
    let w = Workdir::new();
    let recipes = w.recipes();
    let clientes = std::fs::read_to_string(recipes.join("clientes.toml")).unwrap();
    for e in std::fs::read_dir(&recipes).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "pipeline.toml" {
            std::fs::remove_file(p).unwrap();
        }
    }
    // Sheets keep their first 1,000 rows: what stays of an entity after its pass is that.
    let pipeline = std::fs::read_to_string(recipes.join("pipeline.toml")).unwrap();
    assert!(pipeline.contains("[staging]\n"));
    std::fs::write(
        recipes.join("pipeline.toml"),
        pipeline.replace("[staging]\n", "[staging]\nxlsx_entity_rows = 1000\n"),
    )
    .unwrap();
    let files = "files = [\"clientes.csv\", \"clientes*.csv\"]";
    assert!(clientes.contains(files) && clientes.contains("entity = \"clientes\""));
    let text = clients_csv(rows, &[], &[]);
    for k in 1..=copies {
        let name = format!("copia{k}");
        let recipe = clientes
            .replace("entity = \"clientes\"", &format!("entity = \"{name}\""))
            .replace(files, &format!("files = [\"{name}.csv\"]"));
        std::fs::write(recipes.join(format!("{name}.toml")), recipe).unwrap();
        w.cp1252(&format!("{name}.csv"), &text);
    }
    w
}

/// The most bytes held at once during a first load of `w`, above what was held before it.
fn peak_of_first_load(w: &Workdir) -> usize {
    let opts = RunOptions::new(w.recipes(), w.inbox(), w.out());
    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let report = run(&opts).expect("the run");
    assert_eq!(report.crm_rows_written, report.entities.len() * ROWS);
    PEAK.load(Ordering::Relaxed) - before
}

const ROWS: usize = 20_000;

#[test]
fn eight_entities_need_about_the_memory_of_two() {
    let mb = |b: usize| b as f64 / 1048576.0;
    // Warm: the first run in a process sets up what every run shares (thread pools, caches).
    peak_of_first_load(&workspace(1, ROWS));
    let one = peak_of_first_load(&workspace(1, ROWS));
    let eight = peak_of_first_load(&workspace(8, ROWS));
    println!(
        "bytes held at the peak of a first load: one entity of {ROWS} rows {:.1} MiB, eight {:.1} MiB",
        mb(one),
        mb(eight)
    );
    // Up to three entities overlap by design (one being staged, one worked on, the next
    // file read ahead), and each leaves its IDs and its sheet's first rows: about 2x one
    // entity was measured (1.6-2.1x over runs). Holding every entity's rows until the CRM
    // stage, as runs did before, took 4.1x (13.9 -> 56.6 MiB).
    assert!(
        (eight as f64) < one as f64 * 3.0,
        "eight entities held {:.1} MiB at their peak, one {:.1} MiB: the entities' rows pile up",
        mb(eight),
        mb(one)
    );
}
