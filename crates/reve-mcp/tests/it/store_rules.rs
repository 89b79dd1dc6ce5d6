//! The job store's contract, checked the same way against every engine. The rules about money
//! that each store keeps in one atomic step ([`money_rules`]): reuse of finished jobs only when
//! allowed, passed-over jobs, a taken output name, the daily limit's holds and uncertain edits,
//! a paid result left unsaved and taken up again, the name recorded before a rename. And a
//! job's life ([`lifecycle_rules`]): its states, usage counted once, a success never
//! overwritten, paging of results, kept pictures, and a job whose owner is gone taken over by
//! exactly one survivor. SQLite here; Redis in [`crate::scale_out`], which needs a
//! `redis-server`.

use std::sync::Arc;
use std::time::Duration;

use reve_mcp::{Answer, Destination, Generation, Picture, Saving};
use reve_mcp::{
    Claim, ClaimRules, Cost, Ending, JobRecord, JobState, JobStore, Payload, Settled, Settlement,
    SqliteStore, UsdLimit,
};

const RUN: &str = "run-of-the-test";

fn rules() -> ClaimRules {
    ClaimRules {
        reuse_window: Duration::from_secs(600),
        reuse_finished: true,
        may_send: true,
        passed_over: Vec::new(),
        daily_limit: None,
        usd_limit: None,
    }
}

async fn new_job(store: &dyn JobStore, id: &str) {
    new_job_of(store, id, "local").await;
}

async fn new_job_of(store: &dyn JobStore, id: &str, principal: &str) {
    new_job_asking(store, id, principal, reve_core::edit_image::MODEL).await;
}

async fn new_job_asking(store: &dyn JobStore, id: &str, principal: &str, model: &str) {
    store
        .insert(JobRecord::queued(
            id.to_owned(),
            principal.to_owned(),
            Generation::new(
                model,
                "p",
                Destination {
                    folder: "/tmp".to_owned(),
                    name: None,
                    saves: true,
                },
            ),
            RUN.to_owned(),
        ))
        .await
        .unwrap();
}

async fn claim(store: &dyn JobStore, id: &str, fingerprint: &str, rules: ClaimRules) -> Claim {
    new_job(store, id).await;
    store
        .claim(id.to_owned(), fingerprint.to_owned(), rules)
        .await
        .unwrap()
}

/// A new job of `model` claimed, with a fingerprint of its own.
async fn claim_of(store: &dyn JobStore, id: &str, model: &str, rules: ClaimRules) -> Claim {
    new_job_asking(store, id, "local", model).await;
    store
        .claim(id.to_owned(), format!("fp-{id}"), rules)
        .await
        .unwrap()
}

/// The job's generation as the store has it, changed by `change` as its next revision.
async fn next(store: &dyn JobStore, id: &str, change: impl FnOnce(&mut Generation)) -> Payload {
    let record = store.get(id.to_owned()).await.unwrap().unwrap();
    record.payload.next(change)
}

async fn answered(store: &dyn JobStore, id: &str, usage: Option<f64>) {
    let payload = next(store, id, |generation| {
        generation.answer = Some(Answer {
            url: Some(format!("https://cdn.example/{id}.png")),
            request_id: Some(format!("req-{id}")),
            content_violation: Some(false),
            inference_id: Some(format!("inf-{id}")),
        });
    })
    .await;
    let cost = usage.map(|tokens| Cost {
        tokens: Some(tokens),
        ..Cost::default()
    });
    store.answered(id.to_owned(), cost, payload).await.unwrap();
}

/// Ends job `id` as `ending` says, with a result when it succeeded.
async fn end(store: &dyn JobStore, id: &str, ending: Ending) {
    let payload = next(store, id, |generation| {
        if ending.state == JobState::Succeeded {
            generation.result = Some(Picture {
                path: Some(format!("/tmp/{id}.png")),
                mime_type: "image/png".to_owned(),
                width: 1,
                height: 1,
                bytes: 1,
                ..Picture::default()
            });
        }
    })
    .await;
    store
        .finish(id.to_owned(), ending, None, Some(payload))
        .await
        .unwrap();
}

/// An ending in `state` refused by the API (nothing charged).
fn refused(state: JobState) -> Ending {
    Ending {
        state,
        refused_by_api: true,
        unsaved: false,
    }
}

/// Every rule, each on a fresh store from `fresh`.
pub async fn money_rules<F, Opened>(fresh: F)
where
    F: Fn(&'static str) -> Opened,
    Opened: Future<Output = Arc<dyn JobStore>>,
{
    // Reuse: a finished job only when allowed; a running one always; passed-over ones never.
    let store = fresh("reuse").await;
    let store = store.as_ref();
    assert_eq!(claim(store, "a", "fp1", rules()).await, Claim::Send);
    answered(store, "a", Some(10.0)).await;
    end(store, "a", Ending::plain(JobState::Succeeded)).await;
    let url_input = ClaimRules {
        reuse_finished: false,
        ..rules()
    };
    assert_eq!(claim(store, "b", "fp1", url_input).await, Claim::Send);
    assert_eq!(
        claim(store, "c", "fp1", rules()).await,
        Claim::Reuse("b".into())
    );
    // A succeeded job passed over (its file is gone) is not reused: sent.
    assert_eq!(claim(store, "e", "fp3", rules()).await, Claim::Send);
    end(store, "e", Ending::plain(JobState::Succeeded)).await;
    let passing_e = ClaimRules {
        passed_over: vec!["e".into()],
        ..rules()
    };
    assert_eq!(
        claim(store, "f", "fp3", rules()).await,
        Claim::Reuse("e".into())
    );
    assert_eq!(
        store
            .claim("f".into(), "fp3".into(), passing_e)
            .await
            .unwrap(),
        Claim::Send
    );
    let record = store.get("f".into()).await.unwrap().unwrap();
    assert_eq!(
        record.reused_from, None,
        "a claim sent after a reuse forgets it"
    );
    assert!(record.sent);
    // A taken output name: nothing identical to reuse, so nothing is sent.
    let name_taken = ClaimRules {
        may_send: false,
        ..rules()
    };
    assert_eq!(claim(store, "d", "fp2", name_taken).await, Claim::NotSent);
    assert!(!store.get("d".into()).await.unwrap().unwrap().sent);

    // The daily limit: 10 used, two in flight at 10 each would reach 25: held.
    let store = fresh("limit").await;
    let store = store.as_ref();
    claim(store, "a", "fp-a", rules()).await;
    answered(store, "a", Some(10.0)).await;
    end(store, "a", Ending::plain(JobState::Succeeded)).await;
    let limited = || ClaimRules {
        daily_limit: Some(25.0),
        ..rules()
    };
    assert_eq!(claim(store, "b", "fp-b", limited()).await, Claim::Send);
    assert_eq!(claim(store, "c", "fp-c", limited()).await, Claim::Send);
    assert_eq!(claim(store, "d", "fp-d", limited()).await, Claim::Hold);
    // "b" was killed while the API worked (it may have been charged); "c" was refused by the
    // API (nothing charged). Counted: 10 + 10 for "b".
    end(store, "b", Ending::plain(JobState::Interrupted)).await;
    end(store, "c", refused(JobState::Failed)).await;
    assert_eq!(
        store
            .claim("d".into(), "fp-d".into(), limited())
            .await
            .unwrap(),
        Claim::Send
    );
    end(store, "d", Ending::plain(JobState::Cancelled)).await;
    let spending = store.spending_today().await.unwrap();
    assert_eq!(
        (spending.used, spending.uncertain(), spending.in_flight()),
        (10.0, 2, 0)
    );
    assert_eq!(spending.cost_of(reve_core::edit_image::MODEL), Some(10.0));
    assert_eq!(
        claim(store, "e", "fp-e", limited()).await,
        Claim::OverLimit(spending)
    );
    let today = store.usage_by_day().await.unwrap();
    let today = today.last().unwrap();
    assert_eq!(
        (today.jobs, today.credits, today.tokens, today.uncertain),
        (1, 0.0, 10.0, 2)
    );
    assert!(store.get("b".into()).await.unwrap().unwrap().may_be_charged);
    assert!(!store.get("c".into()).await.unwrap().unwrap().may_be_charged);

    // Settled by the provider's usage logs, oldest first and each once: "b" was charged 10
    // credits ($0.005), which count from now on at that cost, and "d" nothing; neither is
    // uncertain any more, and a job that never was ("c") is not settled.
    let unsettled: Vec<String> = store
        .unsettled(10)
        .await
        .unwrap()
        .into_iter()
        .map(|job| job.id)
        .collect();
    assert_eq!(unsettled, ["b", "d"]);
    let charged = Settlement::Charged(Cost {
        credits: Some(10.0),
        tokens: None,
        usd: Some(0.005),
    });
    let settle =
        |id: &str, settlement, note: &str| store.settle(id.to_owned(), settlement, note.to_owned());
    assert!(settle("b", charged, "charged, per the logs").await.unwrap());
    assert!(!settle("b", Settlement::NotCharged, "again").await.unwrap());
    assert!(
        settle("d", Settlement::NotCharged, "not charged")
            .await
            .unwrap()
    );
    assert!(
        !settle("c", Settlement::NotCharged, "never uncertain")
            .await
            .unwrap()
    );
    assert!(store.unsettled(10).await.unwrap().is_empty());
    let spending = store.spending_today().await.unwrap();
    assert_eq!((spending.used, spending.uncertain()), (20.0, 0));
    let today = store.usage_by_day().await.unwrap();
    let today = today.last().unwrap();
    assert_eq!(
        (
            today.jobs,
            today.credits,
            today.tokens,
            today.uncertain,
            today.usd
        ),
        (2, 10.0, 10.0, 0, 0.005)
    );
    let b = store.get("b".into()).await.unwrap().unwrap();
    assert_eq!(
        (b.settled, b.may_be_charged),
        (Some(Settled::Charged), false)
    );
    assert_eq!(b.cost().and_then(|cost| cost.usd), Some(0.005));
    assert_eq!(b.error.as_deref(), Some("charged, per the logs"));
    let d = store.get("d".into()).await.unwrap().unwrap();
    assert_eq!((d.settled, d.cost()), (Some(Settled::NotCharged), None));

    // Each model at its own cost: edits cost 10, creates 4. With 14 used of 30, two creates
    // and an edit go out (14 + 4 + 4 + 10 = 32 at most); a latest-cost-of-any rule would have
    // counted the edit at 4 and sent a fourth, past the limit.
    let store = fresh("models").await;
    let store = store.as_ref();
    let (edit, create, remix) = (
        reve_core::edit_image::MODEL,
        reve_core::create_image::MODEL,
        reve_core::remix_edit_image::MODEL,
    );
    claim_of(store, "e1", edit, rules()).await;
    answered(store, "e1", Some(10.0)).await;
    end(store, "e1", Ending::plain(JobState::Succeeded)).await;
    claim_of(store, "c1", create, rules()).await;
    answered(store, "c1", Some(4.0)).await;
    end(store, "c1", Ending::plain(JobState::Succeeded)).await;
    let limited = || ClaimRules {
        daily_limit: Some(30.0),
        ..rules()
    };
    assert_eq!(claim_of(store, "c2", create, limited()).await, Claim::Send);
    assert_eq!(claim_of(store, "c3", create, limited()).await, Claim::Send);
    assert_eq!(claim_of(store, "e2", edit, limited()).await, Claim::Send);
    assert_eq!(claim_of(store, "c4", create, limited()).await, Claim::Hold);
    let spending = store.spending_today().await.unwrap();
    let parts: Vec<(&str, u64, u64, Option<f64>)> = spending
        .models
        .iter()
        .map(|part| {
            (
                part.model.as_str(),
                part.in_flight,
                part.uncertain,
                part.cost,
            )
        })
        .collect();
    assert_eq!(parts, [(create, 2, 0, Some(4.0)), (edit, 1, 0, Some(10.0))]);
    // A remix, whose model never reported a cost, killed after sending: it counts at the
    // costliest known (10), never less than it may cost.
    for id in ["c2", "c3", "e2"] {
        answered(store, id, Some(if id == "e2" { 10.0 } else { 4.0 })).await;
        end(store, id, Ending::plain(JobState::Succeeded)).await;
    }
    assert_eq!(claim_of(store, "r1", remix, rules()).await, Claim::Send);
    end(store, "r1", Ending::plain(JobState::Interrupted)).await;
    let spending = store.spending_today().await.unwrap();
    assert_eq!(spending.used, 32.0);
    assert_eq!(spending.uncertain(), 1);
    assert_eq!(spending.counted(), Some(42.0));
    assert_eq!(
        claim_of(store, "c5", create, limited()).await,
        Claim::OverLimit(spending)
    );

    // A limit in US dollars: each edit counted at its model's live price, this one included,
    // so that none is sent that would take the day past it; an edit that may have been
    // charged counts at its price until the usage logs settle it.
    let store = fresh("usd").await;
    let store = store.as_ref();
    claim_of(store, "u1", edit, rules()).await;
    let payload = next(store, "u1", |_| {}).await;
    let paid = Cost {
        credits: Some(210_000.0),
        tokens: None,
        usd: Some(0.105),
    };
    store
        .answered("u1".into(), Some(paid), payload)
        .await
        .unwrap();
    end(store, "u1", Ending::plain(JobState::Succeeded)).await;
    let in_dollars = || ClaimRules {
        usd_limit: Some(UsdLimit {
            per_day: 0.3,
            prices: vec![(edit.to_owned(), 0.105)],
        }),
        ..rules()
    };
    // 0.105 spent + 0.105: sent. Then 0.105 + 0.105 in flight + 0.105: held.
    assert_eq!(claim_of(store, "u2", edit, in_dollars()).await, Claim::Send);
    assert_eq!(claim_of(store, "u3", edit, in_dollars()).await, Claim::Hold);
    // Killed after sending: it may have been charged, and counts at its price.
    end(store, "u2", Ending::plain(JobState::Interrupted)).await;
    let refused = claim_of(store, "u4", edit, in_dollars()).await;
    let Claim::OverUsdLimit(spending) = refused else {
        panic!("not refused: {refused:?}");
    };
    assert_eq!((spending.used_usd, spending.uncertain()), (0.105, 1));
    // A create, never priced nor reported, counts at the costliest known price.
    assert!(matches!(
        claim_of(store, "u5", create, in_dollars()).await,
        Claim::OverUsdLimit(_)
    ));
    // The logs settle the killed one as not charged: the day has room again.
    assert!(
        store
            .settle("u2".into(), Settlement::NotCharged, "not charged".into())
            .await
            .unwrap()
    );
    assert_eq!(claim_of(store, "u6", edit, in_dollars()).await, Claim::Send);

    // An answer reporting its cost in one unit only (a proxy dropped the cost headers, or the
    // body carried no usage): each limit counts it at its model's cost in the unit it lacks,
    // never as free.
    let store = fresh("one-unit").await;
    let store = store.as_ref();
    claim_of(store, "t1", edit, rules()).await;
    answered(store, "t1", Some(210_000.0)).await;
    end(store, "t1", Ending::plain(JobState::Succeeded)).await;
    claim_of(store, "d1", edit, rules()).await;
    let payload = next(store, "d1", |_| {}).await;
    let dollars_only = Cost {
        usd: Some(0.105),
        ..Cost::default()
    };
    store
        .answered("d1".into(), Some(dollars_only), payload)
        .await
        .unwrap();
    end(store, "d1", Ending::plain(JobState::Succeeded)).await;
    let spending = store.spending_today().await.unwrap();
    assert_eq!((spending.used, spending.used_usd), (210_000.0, 0.105));
    assert_eq!(spending.counted(), Some(420_000.0));
    // 0.105 reported, 0.105 for the answer without dollars, 0.105 for this one: past 0.3.
    assert!(matches!(
        claim_of(store, "t2", edit, in_dollars()).await,
        Claim::OverUsdLimit(_)
    ));
    let in_credits = || ClaimRules {
        daily_limit: Some(400_000.0),
        ..rules()
    };
    assert!(matches!(
        claim_of(store, "t3", edit, in_credits()).await,
        Claim::OverLimit(_)
    ));

    // A paid result left unsaved: reused by an identical call, taken up again once.
    let store = fresh("unsaved").await;
    let store = store.as_ref();
    claim(store, "a", "fp-u", rules()).await;
    answered(store, "a", Some(10.0)).await;
    let saving = next(store, "a", |generation| {
        generation.saving = Some(Saving {
            path: "/out/a.png".to_owned(),
            bytes: 1234,
        });
    })
    .await;
    store.update("a".into(), saving).await.unwrap();
    let unsaved = Ending {
        state: JobState::Failed,
        refused_by_api: false,
        unsaved: true,
    };
    end(store, "a", unsaved).await;
    let record = store.get("a".into()).await.unwrap().unwrap();
    assert!(record.unsaved && !record.may_be_charged);
    assert_eq!(
        record.generation().saving,
        Some(Saving {
            path: "/out/a.png".to_owned(),
            bytes: 1234
        })
    );
    assert_eq!(
        claim(store, "b", "fp-u", rules()).await,
        Claim::Reuse("a".into())
    );
    let taken = store
        .reopen("a".into(), "another-run".into(), 7)
        .await
        .unwrap();
    assert!(taken);
    assert!(
        !store
            .reopen("a".into(), "a-third-run".into(), 8)
            .await
            .unwrap(),
        "taken up once"
    );
    let record = store.get("a".into()).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Running);
    assert_eq!(record.owner_run, "another-run");
    assert!(!record.unsaved);
}

/// A job's life on stores from `fresh`, which opens the store of that name (the same one when
/// asked twice), with a short lease. `lapse` is how long an owner's hold lasts once its run is
/// gone: nothing for SQLite (a run's lock goes with its process), the lease for Redis.
pub async fn lifecycle_rules<F, Opened>(fresh: F, lapse: Duration)
where
    F: Fn(&'static str) -> Opened,
    Opened: Future<Output = Arc<dyn JobStore>>,
{
    use reve_mcp::KeptPicture;

    // States: queued, then running and sent once claimed; the API's answer and usage recorded
    // once however often it is told; a success kept whatever ends it is told after.
    let store = fresh("states").await;
    let store = store.as_ref();
    new_job(store, "a").await;
    let queued = store.get("a".into()).await.unwrap().unwrap();
    assert_eq!((queued.state, queued.sent), (JobState::Queued, false));
    assert_eq!(
        store
            .claim("a".into(), "fp-a".into(), rules())
            .await
            .unwrap(),
        Claim::Send
    );
    let running = store.get("a".into()).await.unwrap().unwrap();
    assert_eq!((running.state, running.sent), (JobState::Running, true));
    answered(store, "a", Some(10.0)).await;
    answered(store, "a", Some(10.0)).await;
    let answer = store.get("a".into()).await.unwrap().unwrap();
    assert_eq!(
        answer.generation().published_url(),
        Some("https://cdn.example/a.png")
    );
    assert_eq!(answer.generation().request_id(), Some("req-a"));
    // A write retried late (an older revision) never overwrites a newer one.
    let stale = Payload {
        revision: 1,
        generation: Generation::default(),
    };
    store.update("a".into(), stale).await.unwrap();
    assert_eq!(
        store.get("a".into()).await.unwrap().unwrap().payload,
        answer.payload
    );
    end(store, "a", Ending::plain(JobState::Succeeded)).await;
    end(store, "a", Ending::plain(JobState::Failed)).await;
    let done = store.get("a".into()).await.unwrap().unwrap();
    assert_eq!(
        done.state,
        JobState::Succeeded,
        "a success is never overwritten"
    );
    assert_eq!(
        done.generation().result.as_ref().unwrap().path.as_deref(),
        Some("/tmp/a.png")
    );
    assert_eq!(
        done.generation().prompt,
        "p",
        "the payload comes back whole"
    );
    let days = store.usage_by_day().await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(
        (days[0].jobs, days[0].tokens),
        (1, 10.0),
        "usage counted once"
    );
    assert!(store.get("no-such-job".into()).await.unwrap().is_none());

    // Usage: every answered job of the day, and nothing for one never answered.
    claim(store, "b", "fp-b", rules()).await;
    answered(store, "b", Some(5.0)).await;
    end(store, "b", Ending::plain(JobState::Succeeded)).await;
    claim(store, "c", "fp-c", rules()).await;
    end(store, "c", refused(JobState::Failed)).await;
    // Usage reported in credits is summed apart from usage reported in tokens, and dollars
    // apart from both; a second answer (a retried write) counts nothing again.
    claim(store, "d", "fp-d", rules()).await;
    let in_credits = Cost {
        credits: Some(0.25),
        tokens: Some(99.0),
        usd: Some(0.125),
    };
    for _ in 0..2 {
        let payload = next(store, "d", |_| {}).await;
        store
            .answered("d".to_owned(), Some(in_credits), payload)
            .await
            .unwrap();
    }
    end(store, "d", Ending::plain(JobState::Succeeded)).await;
    let days = store.usage_by_day().await.unwrap();
    assert_eq!(
        (
            days[0].jobs,
            days[0].credits,
            days[0].tokens,
            days[0].uncertain,
            days[0].usd,
        ),
        (3, 0.25, 15.0, 0, 0.125)
    );
    let d = store.get("d".to_owned()).await.unwrap().unwrap();
    assert_eq!(d.cost(), Some(in_credits));

    // Paging: a principal's own results, newest first, each page after the last; reused
    // results and other principals' jobs are not listed; `recent` lists every job.
    let store = fresh("paging").await;
    let store = store.as_ref();
    for id in ["p1", "p2", "p3"] {
        claim(store, id, &format!("fp-{id}"), rules()).await;
        end(store, id, Ending::plain(JobState::Succeeded)).await;
        // Creation times a millisecond apart at least, so that the order is by them.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        claim(store, "p4", "fp-p3", rules()).await,
        Claim::Reuse("p3".into())
    );
    end(store, "p4", Ending::plain(JobState::Succeeded)).await;
    new_job_of(store, "q1", "token:someone-else").await;
    let ids = |records: Vec<JobRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let first = store.results("local".into(), None, 2).await.unwrap();
    let after = first.last().map(|last| (last.created_ms, last.id.clone()));
    assert_eq!(ids(first), ["p3", "p2"]);
    let second = store.results("local".into(), after, 2).await.unwrap();
    assert_eq!(ids(second), ["p1"]);
    assert_eq!(ids(store.recent(10).await.unwrap()).len(), 5);
    assert_eq!(ids(store.recent(2).await.unwrap()).len(), 2);

    // Kept pictures: what was kept comes back byte for byte; nothing for a picture never kept.
    let preview = vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3];
    store
        .keep_picture(KeptPicture::Preview, "p1".into(), preview.clone().into())
        .await
        .unwrap();
    assert_eq!(
        store
            .picture(KeptPicture::Preview, "p1".into())
            .await
            .unwrap(),
        Some(preview)
    );
    assert_eq!(
        store
            .picture(KeptPicture::Input(0), "p1".into())
            .await
            .unwrap(),
        None
    );
    // A job's second input is its own picture, beside (not over) the first.
    let second = bytes::Bytes::from_static(b"the second input");
    store
        .keep_picture(KeptPicture::Input(1), "p1".into(), second.clone())
        .await
        .unwrap();
    assert_eq!(
        store
            .picture(KeptPicture::Input(1), "p1".into())
            .await
            .unwrap()
            .as_deref(),
        Some(second.as_ref())
    );
    assert_eq!(
        store
            .picture(KeptPicture::Input(0), "p1".into())
            .await
            .unwrap(),
        None
    );

    // Leases: an owner that renews keeps its job past the first lease; once it stops renewing,
    // the job goes to a survivor when the lease lapses, though the owner's process lives.
    let store = fresh("leases").await;
    let store = store.as_ref();
    let lease = store.lease();
    claim(store, "l", "fp-l", rules()).await;
    tokio::time::sleep(lease / 2).await;
    store.renew(RUN.into(), vec!["l".into()]).await.unwrap();
    tokio::time::sleep(lease * 3 / 4).await;
    assert!(
        store
            .orphans("survivor".into(), 13)
            .await
            .unwrap()
            .is_empty(),
        "a renewed lease holds"
    );
    tokio::time::sleep(lease).await;
    let taken = store.orphans("survivor".into(), 13).await.unwrap();
    assert_eq!(ids(taken), ["l"], "a lapsed lease is taken over");
    assert!(
        store
            .orphans("survivor-2".into(), 14)
            .await
            .unwrap()
            .is_empty(),
        "by one survivor, under a lease of its own"
    );

    // Takeover: an unfinished job whose run is gone goes to exactly one survivor, once. The
    // run that made it ends with its store (`fresh` opens the same store again).
    {
        let first = fresh("takeover").await;
        claim(first.as_ref(), "t", "fp-t", rules()).await;
    }
    let store = fresh("takeover").await;
    let store = store.as_ref();
    let deadline = tokio::time::Instant::now() + lapse + Duration::from_secs(10);
    let taken = loop {
        let taken = store.orphans("survivor-1".into(), 11).await.unwrap();
        if !taken.is_empty() || tokio::time::Instant::now() > deadline {
            break taken;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ids(taken), ["t"], "the orphan is taken over");
    assert!(
        store
            .orphans("survivor-2".into(), 12)
            .await
            .unwrap()
            .is_empty(),
        "by one survivor only"
    );
    let record = store.get("t".into()).await.unwrap().unwrap();
    assert_eq!(
        (record.owner_run.as_str(), record.state),
        ("survivor-1", JobState::Running)
    );
}

#[tokio::test]
async fn the_sqlite_store_keeps_a_jobs_life() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_owned();
    lifecycle_rules(
        |name| {
            let folder = root.join(name);
            async move {
                Arc::new(SqliteStore::with_lease(&folder, Duration::from_millis(800)))
                    as Arc<dyn JobStore>
            }
        },
        Duration::ZERO,
    )
    .await;
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_money_rules() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().to_owned();
    money_rules(|name| {
        let folder = root.join(name);
        async move { Arc::new(SqliteStore::in_folder(&folder)) as Arc<dyn JobStore> }
    })
    .await;
}
