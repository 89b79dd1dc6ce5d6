//! The embedded engine's own cases; the contract every engine keeps is tested in
//! `tests/it/store_rules.rs`.

use super::*;
use crate::generation::{Destination, Generation};
use crate::jobs::store::JobState;

fn synchronous(store: &SqliteStore) -> i64 {
    store
        .with_blocking(|connection| {
            connection.pragma_query_value(None, "synchronous", |row| row.get(0))
        })
        .unwrap()
}

fn job(id: &str) -> JobRecord {
    JobRecord::queued(
        id.into(),
        "local".into(),
        Generation::new(
            reve_core::edit_image::MODEL,
            "p",
            Destination {
                folder: "/tmp".into(),
                name: None,
                saves: true,
            },
        ),
        "run".into(),
    )
}

/// 2 is FULL: every commit after an insert is synced again, even after a failed insert.
#[tokio::test]
async fn the_insert_itself_goes_unsynced() {
    let folder = tempfile::tempdir().unwrap();
    let store = SqliteStore::in_folder(folder.path());
    store.insert(job("a")).await.unwrap();
    assert_eq!(synchronous(&store), 2);
    let duplicate = store.insert(job("a")).await;
    assert!(duplicate.is_err(), "{duplicate:?}");
    assert_eq!(synchronous(&store), 2);
    let record = store.get("a".into()).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Queued);
    assert!(!record.sent);
}

/// A success's end, committed without a sync of its own, is there at once for another process
/// (a `get_edit` that follows the answer, say), and leaves the next commit synced again.
#[tokio::test]
async fn the_end_of_a_success_is_seen_by_another_process_at_once() {
    let folder = tempfile::tempdir().unwrap();
    let store = SqliteStore::in_folder(folder.path());
    for id in ["a", "b"] {
        store.insert(job(id)).await.unwrap();
    }
    let ended = [
        ("a", Ending::plain(JobState::Succeeded)),
        ("b", Ending::plain(JobState::Failed)),
    ];
    for (id, ending) in ended {
        store.finish(id.into(), ending, None, None).await.unwrap();
        assert_eq!(synchronous(&store), 2);
    }
    let other = SqliteStore::in_folder(folder.path());
    for (id, state) in [("a", JobState::Succeeded), ("b", JobState::Failed)] {
        let record = other.get(id.into()).await.unwrap().unwrap();
        assert_eq!(record.state, state, "job {id}");
    }
}

/// Today's spending with one model, whose latest cost is `per_edit`.
fn spending(used: f64, in_flight: u64, uncertain: u64, per_edit: Option<f64>) -> Spending {
    Spending {
        used,
        used_usd: 0.0,
        models: vec![ModelSpending {
            model: "reve/edit-image".into(),
            in_flight,
            uncertain,
            cost: per_edit,
            ..ModelSpending::default()
        }],
    }
}

/// One edit over at most: with 1 used of 2.5 and edits costing 1, a second edit may go
/// out beside the first (3 at most), a third waits for them; before any edit has
/// reported a cost, one at a time, the others held (never refused); an edit that may
/// have been charged counts at the latest cost, and with no cost known refuses the rest.
#[test]
fn the_limit_reserves_what_the_edits_in_flight_and_the_uncertain_ones_may_use() {
    use LimitVerdict::{Fits, Hold, Over};
    assert_eq!(spending(1.0, 0, 0, Some(1.0)).verdict(2.5), Fits);
    assert_eq!(spending(1.0, 1, 0, Some(1.0)).verdict(2.5), Fits);
    assert_eq!(spending(1.0, 2, 0, Some(1.0)).verdict(2.5), Hold);
    assert_eq!(spending(2.5, 0, 0, Some(1.0)).verdict(2.5), Over);
    assert_eq!(spending(0.0, 0, 0, None).verdict(2.5), Fits);
    assert_eq!(spending(0.0, 1, 0, None).verdict(2.5), Hold);
    assert_eq!(spending(1.0, 0, 1, Some(1.0)).verdict(2.5), Fits);
    assert_eq!(spending(1.0, 0, 2, Some(1.0)).verdict(2.5), Over);
    assert_eq!(spending(1.0, 1, 1, Some(1.0)).verdict(2.5), Hold);
    assert_eq!(spending(0.0, 0, 1, None).verdict(2.5), Over);
    assert_eq!(spending(1.0, 0, 2, Some(1.0)).counted(), Some(3.0));
}

/// A store an earlier release kept in columns is moved into envelope and payload when opened:
/// its jobs, their state, usage and result are all still there.
#[tokio::test]
async fn a_store_kept_in_columns_keeps_its_jobs() {
    let folder = tempfile::tempdir().unwrap();
    let connection = Connection::open(folder.path().join(STORE_FILE)).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL, principal TEXT NOT NULL, \
             fingerprint TEXT, state TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0, \
             created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, finished_ms INTEGER, \
             prompt TEXT NOT NULL, stage_dir TEXT NOT NULL, output_name TEXT, \
             saves INTEGER NOT NULL, generated_url TEXT, request_id TEXT, credits_used REAL, \
             tokens_used REAL, result_path TEXT, result_url TEXT, content_violation INTEGER, \
             mime_type TEXT, width INTEGER, height INTEGER, bytes INTEGER, \
             preview_mime TEXT, preview_width INTEGER, preview_height INTEGER, \
             reused_from TEXT, error TEXT, owner_pid INTEGER NOT NULL, \
             owner_run TEXT NOT NULL);
             INSERT INTO jobs VALUES ('a', 'local', 'fp', 'succeeded', 1, 5, 6, 6, 'add a hat', \
             '/out', 'hat.png', 1, 'https://cdn.example/a.png', 'req-a', NULL, 7.0, \
             '/out/hat.png', 'https://cdn.example/a.png', 0, 'image/png', 640, 480, 1234, \
             'image/jpeg', 320, 240, NULL, NULL, 1, 'gone');",
        )
        .unwrap();
    drop(connection);
    let store = SqliteStore::in_folder(folder.path());
    let record = store.get("a".into()).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.usage(), Some(7.0));
    let generation = record.generation();
    assert_eq!(generation.prompt, "add a hat");
    assert_eq!(generation.destination.name.as_deref(), Some("hat.png"));
    assert!(generation.destination.saves);
    assert_eq!(generation.request_id(), Some("req-a"));
    let result = generation.result.as_ref().unwrap();
    assert_eq!(
        (
            result.path.as_deref(),
            result.width,
            result.height,
            result.bytes
        ),
        (Some("/out/hat.png"), 640, 480, 1234)
    );
    assert_eq!(result.preview.as_ref().unwrap().width, 320);
    assert!(generation.inputs.is_empty());
    assert_eq!(record.model, "reve/edit-image");
    // The moved store takes new jobs, and keeps paging its results.
    store.insert(job("b")).await.unwrap();
    let results = store.results("local".into(), None, 10).await.unwrap();
    assert_eq!(results.len(), 1);
}

/// A store made before jobs named their model gains the column, each of its jobs an edit, and
/// takes jobs of any model after.
#[tokio::test]
async fn a_store_from_before_models_counts_its_jobs_as_edits() {
    let folder = tempfile::tempdir().unwrap();
    let connection = Connection::open(folder.path().join(STORE_FILE)).unwrap();
    let without_model = schema::SCHEMA.replace(
        "    -- Older stores gain it by migration, each of their jobs an edit.\n    model TEXT NOT NULL DEFAULT 'reve/edit-image',\n",
        "",
    );
    assert!(!without_model.contains("model TEXT"), "{without_model}");
    connection.execute_batch(&without_model).unwrap();
    connection
        .execute(
            "INSERT INTO jobs (id, principal, state, sent, created_ms, updated_ms, credits_used, \
             owner_pid, owner_run, payload) VALUES ('a', 'local', 'succeeded', 1, 5, 6, 7.0, 1, \
             'gone', '{}')",
            [],
        )
        .unwrap();
    drop(connection);
    let store = SqliteStore::in_folder(folder.path());
    assert_eq!(
        store.get("a".into()).await.unwrap().unwrap().model,
        "reve/edit-image"
    );
    let mut create = job("b");
    create.model = "reve/create-image".into();
    store.insert(create).await.unwrap();
    assert_eq!(
        store.get("b".into()).await.unwrap().unwrap().model,
        "reve/create-image"
    );
}

/// A reader of a store that was never written answers as empty and makes no file.
#[tokio::test]
async fn reading_an_absent_store_makes_no_file() {
    let folder = tempfile::tempdir().unwrap();
    let store = SqliteStore::in_folder(folder.path());
    assert!(store.get("a".into()).await.unwrap().is_none());
    assert!(store.recent(5).await.unwrap().is_empty());
    assert!(store.orphans("r".into(), 1).await.unwrap().is_empty());
    store.health().await.unwrap();
    assert!(!folder.path().join(STORE_FILE).exists());
}

/// A job recorded before leases (moved from a store kept in columns: its lease is 0) belongs
/// to its run for as long as the run's lock file says the run lives, and then to a survivor.
#[tokio::test]
async fn a_job_without_a_lease_is_judged_by_its_runs_lock() {
    let folder = tempfile::tempdir().unwrap();
    let owner = SqliteStore::in_folder(folder.path());
    owner.insert(job("a")).await.unwrap();
    owner
        .with_blocking(|connection| {
            connection.execute(
                "UPDATE jobs SET lease_until_ms = 0, state = 'running' WHERE id = 'a'",
                [],
            )
        })
        .unwrap();
    let survivor = SqliteStore::in_folder(folder.path());
    let taken = survivor.orphans("survivor".into(), 2).await.unwrap();
    assert!(taken.is_empty(), "its run lives: {taken:?}");
    drop(owner);
    let taken = survivor.orphans("survivor".into(), 2).await.unwrap();
    assert_eq!(taken.len(), 1, "its run ended");
}

/// With several models, each edit not reported counts at its own model's latest cost; a model
/// that never reported one counts at the costliest known, never less than it may cost.
#[test]
fn each_model_counts_at_its_own_cost() {
    use LimitVerdict::{Fits, Hold, Over};
    let part = |model: &str, in_flight, uncertain, cost| ModelSpending {
        model: model.into(),
        in_flight,
        uncertain,
        cost,
        ..ModelSpending::default()
    };
    // Creates cost 1, edits 3: two creates in flight fit where two edits would not.
    let creates = Spending {
        used: 1.0,
        used_usd: 0.0,
        models: vec![
            part("reve/create-image", 2, 0, Some(1.0)),
            part("reve/edit-image", 0, 0, Some(3.0)),
        ],
    };
    assert_eq!(creates.verdict(4.5), Fits);
    let edits = Spending {
        used: 1.0,
        used_usd: 0.0,
        models: vec![
            part("reve/create-image", 0, 0, Some(1.0)),
            part("reve/edit-image", 2, 0, Some(3.0)),
        ],
    };
    assert_eq!(edits.verdict(4.5), Hold);
    // An uncertain remix, whose model never reported a cost, counts at the costliest (3).
    let remix = Spending {
        used: 1.0,
        used_usd: 0.0,
        models: vec![
            part("reve/create-image", 0, 0, Some(1.0)),
            part("reve/edit-image", 0, 0, Some(3.0)),
            part("reve/remix-edit-image", 0, 1, None),
        ],
    };
    assert_eq!(remix.counted(), Some(4.0));
    assert_eq!(remix.verdict(4.0), Over);
    assert_eq!(remix.verdict(4.5), Fits);
    assert_eq!(remix.cost_of("reve/create-image"), Some(1.0));
    assert_eq!(remix.cost_of("reve/remix-edit-image"), Some(3.0));
}
