//! End-to-end tests of delivery (encoder → Delivery → HttpSink → loopback mock Langfuse):
//! exactly-once under failures, spool and replay, the ledger, fatal auth errors, 413
//! splitting, legacy 207 handling, transport choice and bounded shutdown.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::deliver::batch::Caps;
use crate::deliver::http::{Reason, TransportChoice};
use crate::deliver::ledger::ResendPolicy;
use crate::deliver::retry::RetryPolicy;
use crate::deliver::sender::{Report, TimeCap};
use crate::deliver::spool::Replay;
use crate::deliver::{Backpressure, Delivery, DeliveryConfig, Offered};
use crate::encode::ingestion::IngestionEncoder;
use crate::encode::otlp::OtlpEncoder;
use crate::encode::{Encoder, Item, Wire};
use crate::model::{self, GenerationInfo, Level, ObsKind, Observation, Record, TraceCtx};
use crate::test_support::mock_langfuse::{
    IngestionMode, MockConfig, MockLangfuse, Scripted, refused_url,
};
use crate::test_support::otlp_strict;

/// Retries that finish in milliseconds.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(20),
        retry_after_cap: Duration::from_secs(2),
    }
}

fn config(url: &str, state: &Path) -> DeliveryConfig {
    let mut cfg = DeliveryConfig::new(url);
    cfg.public_key = Some("pk-lf-test".into());
    cfg.secret_key = Some("sk-lf-test".into());
    cfg.transport = TransportChoice::Otlp;
    cfg.state_dir = Some(state.to_path_buf());
    cfg.timeout = Duration::from_secs(2);
    cfg.shutdown_timeout = Duration::from_secs(5);
    cfg.retry = fast_retry();
    cfg.seed = Some(42);
    cfg
}

fn caps(max_items: usize) -> Caps {
    Caps {
        max_items,
        max_bytes: crate::encode::OTLP_MAX_BODY_BYTES,
    }
}

fn ctx(session: &str) -> Arc<TraceCtx> {
    let mut metadata = Map::new();
    metadata.insert("cwd".into(), json!("/work/project"));
    metadata.insert("turns".into(), json!(2));
    Arc::new(TraceCtx {
        id: model::trace_id(session, None),
        name: format!("session {session}"),
        session_id: session.into(),
        user_id: Some("dev".into()),
        tags: vec!["omp".into()],
        environment: Some("test".into()),
        release: None,
        timestamp: 1_787_220_000_000,
        metadata,
    })
}

/// `n` observations of one session: a root agent, then generations, tools and events.
fn observations(session: &str, n: usize) -> Vec<Observation> {
    let trace = ctx(session);
    let root_id = model::span_id(&trace.id, "root");
    (0..n)
        .map(|i| {
            let kind = match i % 4 {
                _ if i == 0 => ObsKind::Agent,
                0 => ObsKind::Span,
                1 => ObsKind::Generation,
                2 => ObsKind::Tool,
                _ => ObsKind::Event,
            };
            let start = trace.timestamp + i as i64 * 10;
            Observation {
                id: if i == 0 {
                    root_id.clone()
                } else {
                    model::span_id(&trace.id, &format!("obs/{i}"))
                },
                trace: trace.clone(),
                parent_id: (i > 0).then(|| root_id.clone()),
                kind,
                name: format!("{} {i}", kind.as_str()),
                start,
                end: if kind == ObsKind::Event {
                    start
                } else {
                    start + 5
                },
                input: Some(json!({"prompt": format!("step {i}")})),
                output: (i % 3 == 0).then(|| json!("ok")),
                metadata: Map::new(),
                level: if kind == ObsKind::Tool && i % 8 == 2 {
                    Level::Error
                } else {
                    Level::Default
                },
                status_message: (kind == ObsKind::Tool && i % 8 == 2).then(|| "exit 1".into()),
                generation: (kind == ObsKind::Generation).then(|| GenerationInfo {
                    model: Some("claude-sonnet-4-5".into()),
                    model_parameters: Map::new(),
                    usage: vec![("input", 10), ("input_cache_read", 90), ("output", 5)],
                    cost: vec![
                        ("input", 0.00003),
                        ("input_cache_read", 0.000027),
                        ("output", 0.000075),
                    ],
                    completion_start: Some(start + 2),
                }),
            }
        })
        .collect()
}

fn items(enc: &dyn Encoder, obs: &[Observation]) -> Vec<Item> {
    obs.iter()
        .filter_map(|o| enc.encode(&Record::Observation(o.clone())))
        .collect()
}

fn otlp() -> Arc<dyn Encoder> {
    Arc::new(OtlpEncoder::new())
}

/// Run one delivery of `items` and return its report.
fn run(cfg: &DeliveryConfig, enc: Arc<dyn Encoder>, items: &[Item], max_items: usize) -> Report {
    let dest = cfg.resolve();
    let d = Delivery::start(
        cfg,
        dest,
        enc,
        caps(max_items),
        TimeCap::None,
        Backpressure::Wait,
    )
    .unwrap();
    for it in items {
        d.offer(it.clone());
    }
    d.finish()
}

fn assert_exactly_once(mock: &MockLangfuse, items: &[Item]) {
    let spans = mock.spans();
    for it in items {
        assert_eq!(spans.get(&it.key), Some(&1), "span {} count", it.key);
    }
    assert_eq!(spans.len(), items.len(), "unexpected extra spans");
    assert!(mock.invalid().is_empty(), "{:?}", mock.invalid());
}

#[test]
fn every_body_passes_the_strict_check_and_the_official_schema() {
    let enc = OtlpEncoder::new();
    let obs = observations("s-strict", 40);
    let body: Value = serde_json::from_slice(&enc.body(&items(&enc, &obs))).unwrap();
    let ids = otlp_strict::check_body(&body).unwrap();
    assert_eq!(ids.len(), 40);
    otlp_strict::check_schema(&body).unwrap();

    // The checker itself is strict: each of these mutations must be caught.
    let span = |f: &dyn Fn(&mut Value)| {
        let mut b = body.clone();
        f(&mut b["resourceSpans"][0]["scopeSpans"][0]["spans"][1]);
        b
    };
    let bad = [
        span(&|s| s["traceId"] = json!(s["traceId"].as_str().unwrap().to_uppercase())),
        span(&|s| s["spanId"] = json!("abc")),
        span(&|s| s["startTimeUnixNano"] = json!(1_787_220_000_000_000_000u64)),
        span(&|s| s["kind"] = json!("1")),
        span(&|s| s["attributes"] = json!({"langfuse.observation.type": "span"})),
        span(&|s| {
            s["attributes"]
                .as_array_mut()
                .unwrap()
                .retain(|a| a["key"] != "langfuse.session.id")
        }),
        span(&|s| {
            for a in s["attributes"].as_array_mut().unwrap() {
                if a["key"] == "langfuse.trace.tags" {
                    a["value"] = json!({"stringValue": "omp"});
                }
            }
        }),
        span(&|s| {
            for a in s["attributes"].as_array_mut().unwrap() {
                if a["key"] == "langfuse.observation.cost_details" {
                    a["value"] = json!({"stringValue": "{\"input\":0.1,\"input_cache_read\":0.2}"});
                }
            }
        }),
        span(&|s| s["status"] = json!({"code": 2})),
    ];
    for (n, b) in bad.iter().enumerate() {
        assert!(
            otlp_strict::check_body(b).is_err(),
            "mutation {n} not caught"
        );
    }
    // The official schema types intValue as an integer: a string would fail it.
    let mut b = body.clone();
    b["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] =
        json!([{"key": "k", "value": {"intValue": "2"}}]);
    assert!(otlp_strict::check_schema(&b).is_err());
}

#[test]
fn exactly_once_under_random_failures_and_rate_limits() {
    let mock = MockLangfuse::start(MockConfig {
        fail_rate: 0.3,
        rate_limit_every: Some(7),
        seed: 3,
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&mock.url(), dir.path());
    let enc = otlp();
    let all: Vec<Item> = (0..4)
        .flat_map(|s| items(&*enc, &observations(&format!("sess-{s}"), 250)))
        .collect();
    let t0 = Instant::now();
    let report = run(&cfg, enc, &all, 50);
    let took = t0.elapsed();
    assert_eq!(report.delivered, 1000, "{report:?}");
    assert_eq!((report.rejected, report.spooled), (0, 0), "{report:?}");
    assert!(report.fatal.is_none());
    assert_exactly_once(&mock, &all);
    let failures = mock.received().iter().filter(|r| r.status != 200).count();
    assert!(
        failures >= 5,
        "the mock should have failed some requests ({failures})"
    );
    // Every request carried the v4 headers, gzip and our name; none leaked the secret.
    for r in mock.received() {
        assert_eq!(r.header("x-langfuse-ingestion-version"), Some("4"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("x-langfuse-sdk-name"), Some("omp-langfuse"));
        assert!(
            r.header("authorization")
                .is_some_and(|a| a.starts_with("Basic "))
        );
    }
    println!(
        "1000 spans, {} requests ({failures} failed) in {took:?}",
        mock.posts()
    );
}

#[test]
fn server_down_spools_and_the_next_run_delivers_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let url = refused_url();
    let cfg = config(&url, dir.path());
    let enc = otlp();
    let all = items(&*enc, &observations("sess-down", 120));
    let t0 = Instant::now();
    let report = run(&cfg, enc.clone(), &all, 50);
    assert_eq!(report.delivered, 0);
    assert_eq!(report.spooled, 120, "{report:?}");
    assert!(report.fatal.is_none(), "a refused connection is not fatal");
    // Generous (a loaded machine): the point is that a refused connection is not retried
    // for the whole retry budget of minutes.
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());

    // The server comes back on the same address; the same input is read again.
    let addr = url.trim_start_matches("http://");
    let Some(mock) = MockLangfuse::start_on(addr, MockConfig::default()) else {
        println!("port {addr} was taken meanwhile; skipping the second half");
        return;
    };
    let report = run(&cfg, enc.clone(), &all, 50);
    assert_eq!(report.delivered, 120, "{report:?}");
    assert_eq!(report.replayed, 120);
    assert_eq!(report.spooled, 0);
    assert_exactly_once(&mock, &all);

    // A third run sends nothing at all.
    let posts = mock.posts();
    let report = run(&cfg, enc, &all, 50);
    assert_eq!(report.delivered, 0);
    assert_eq!(report.skipped, 120);
    assert_eq!(mock.posts(), posts);
}

#[test]
fn rerun_sends_nothing_and_resend_sends_again() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    let enc = otlp();
    let all = items(&*enc, &observations("sess-rerun", 30));
    assert_eq!(run(&cfg, enc.clone(), &all, 100).delivered, 30);
    let report = run(&cfg, enc.clone(), &all, 100);
    assert_eq!((report.delivered, report.skipped), (0, 30));
    assert_eq!(mock.posts(), 1);
    // Duplicates within one input are sent once.
    let doubled: Vec<Item> = all.iter().chain(all.iter()).cloned().collect();
    cfg.resend = ResendPolicy::SendAgain;
    assert_eq!(run(&cfg, enc, &doubled, 100).delivered, 30);
    assert!(mock.spans().values().all(|&n| n == 2));
}

#[test]
fn unauthorized_stops_at_once_and_spools_everything() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.secret_key = Some("sk-lf-wrong-secret".into());
    let enc = otlp();
    let all = items(&*enc, &observations("sess-401", 90));
    let report = run(&cfg, enc.clone(), &all, 30);
    assert_eq!(mock.posts(), 1, "nothing is sent after a 401");
    assert_eq!(report.delivered, 0);
    assert_eq!(report.spooled, 90);
    let fatal = report.fatal.unwrap();
    assert!(
        fatal.contains("401") && fatal.contains("LANGFUSE_SECRET_KEY"),
        "{fatal}"
    );
    assert!(!fatal.contains("sk-lf-wrong-secret"));

    // With the right key the spool is delivered by the next run.
    cfg.secret_key = Some("sk-lf-test".into());
    let report = run(&cfg, enc, &[], 30);
    assert_eq!(report.delivered, 90, "{report:?}");
    assert_exactly_once(&mock, &all);
}

#[test]
fn forbidden_is_fatal_too() {
    let mock = MockLangfuse::start(MockConfig::default());
    mock.script([Scripted::Status(403)]);
    let dir = tempfile::tempdir().unwrap();
    let enc = otlp();
    let all = items(&*enc, &observations("sess-403", 10));
    let report = run(&config(&mock.url(), dir.path()), enc, &all, 100);
    assert!(report.fatal.unwrap().contains("403"));
    assert_eq!(report.spooled, 10);
}

#[test]
fn a_live_stream_is_flushed_by_the_time_cap() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&mock.url(), dir.path());
    let enc = otlp();
    let all = items(&*enc, &observations("sess-live", 3));
    let interval = Duration::from_millis(300);
    let d = Delivery::start(
        &cfg,
        cfg.resolve(),
        enc,
        caps(500),
        TimeCap::After(interval),
        Backpressure::Spill,
    )
    .unwrap();
    let t0 = Instant::now();
    for it in &all {
        assert_eq!(d.offer(it.clone()), Offered::Queued);
    }
    // The input stays open: the data must still be there within the interval + 1 s.
    assert!(mock.wait_for(interval + Duration::from_secs(1), |m| m.spans().len() == 3));
    assert!(t0.elapsed() >= interval);
    let report = d.finish();
    assert_eq!(report.delivered, 3);
}

#[test]
fn shutdown_never_exceeds_its_timeout() {
    let mock = MockLangfuse::start(MockConfig::default());
    mock.script((0..20).map(|_| Scripted::Hang(Duration::from_secs(10))));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.timeout = Duration::from_secs(10);
    cfg.shutdown_timeout = Duration::from_millis(1200);
    let enc = otlp();
    let all = items(&*enc, &observations("sess-hang", 60));
    let d = Delivery::start(
        &cfg,
        cfg.resolve(),
        enc.clone(),
        caps(20),
        TimeCap::None,
        Backpressure::Spill,
    )
    .unwrap();
    for it in &all {
        d.offer(it.clone());
    }
    let t0 = Instant::now();
    let report = d.finish();
    let took = t0.elapsed();
    // Bounded by the timeout, not by the hung server (10 s); the slack is for a loaded
    // machine, not for the implementation.
    assert!(
        took <= cfg.shutdown_timeout + Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(report.spooled, 60, "{report:?}");

    // Nothing lost: once the server answers again, the next run delivers them.
    mock.clear_script();
    let report = run(&cfg, enc, &[], 20);
    assert_eq!(report.delivered, 60, "{report:?}");
    assert_exactly_once(&mock, &all);
}

#[test]
fn oversize_bodies_are_split_and_a_lone_giant_is_rejected() {
    let mock = MockLangfuse::start(MockConfig {
        body_limit: 6_000,
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&mock.url(), dir.path());
    let enc = otlp();
    let mut obs = observations("sess-413", 24);
    // Incompressible inputs, so the gzip body really is large.
    let mut rng = crate::deliver::retry::SplitMix64(9);
    for (i, o) in obs.iter_mut().enumerate() {
        let words = if i == 5 { 4000 } else { 60 };
        let text: String = (0..words)
            .map(|_| format!("{:016x}", rng.next_u64()))
            .collect();
        o.input = Some(json!(text));
    }
    let all = items(&*enc, &obs);
    let report = run(&cfg, enc, &all, 100);
    assert_eq!(report.rejected, 1, "{report:?}");
    assert_eq!(report.delivered, 23);
    let spans = mock.spans();
    assert!(spans.values().all(|&n| n == 1));
    assert_eq!(spans.len(), 23);
    assert!(!spans.contains_key(&all[5].key));
    assert!(mock.received().iter().any(|r| r.status == 413));
}

#[test]
fn retry_after_is_honoured() {
    let mock = MockLangfuse::start(MockConfig::default());
    mock.script([Scripted::RateLimit("1".into())]);
    let dir = tempfile::tempdir().unwrap();
    let enc = otlp();
    let all = items(&*enc, &observations("sess-429", 5));
    let t0 = Instant::now();
    let report = run(&config(&mock.url(), dir.path()), enc, &all, 100);
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert_eq!(report.delivered, 5);
    assert_exactly_once(&mock, &all);
}

/// One bogus item (a spool line that parses but is no span) makes Langfuse refuse the whole
/// batch with a 400: the batch is halved until only that item is rejected.
#[test]
fn a_400_for_a_batch_rejects_only_its_bad_items() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let enc = otlp();
    let mut all = items(&*enc, &observations("sess-400", 9));
    let good = all.clone();
    all.insert(
        4,
        Item {
            session_id: "sess-400".into(),
            key: "bogus".into(),
            json: br#"{"not":"a span"}"#.to_vec(),
            trace_tag: None,
        },
    );
    let report = run(&config(&mock.url(), dir.path()), enc, &all, 100);
    assert_eq!((report.delivered, report.rejected), (9, 1), "{report:?}");
    let spans = mock.spans();
    assert!(good.iter().all(|it| spans.get(&it.key) == Some(&1)));
    assert_eq!(spans.len(), good.len());
    // Halving needs a few refused requests: about log2 of the batch.
    let refused = mock.received().iter().filter(|r| r.status == 400).count();
    assert!((1..=8).contains(&refused), "{refused}");
}

/// Delivered but not recorded (the ledger cannot be written): said, counted, exit 1.
#[test]
fn a_ledger_that_cannot_be_written_is_said() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&mock.url(), dir.path());
    // The session's key file is a directory: no append can succeed (even as root).
    let state = dir
        .path()
        .join(cfg.resolve().state_name(cfg.public_key.as_deref()));
    std::fs::create_dir_all(state.join("ledger").join("sess-ro.keys")).unwrap();
    let enc = otlp();
    let all = items(&*enc, &observations("sess-ro", 4));
    let report = run(&cfg, enc, &all, 100);
    assert_eq!((report.delivered, report.unrecorded), (4, 4), "{report:?}");
}

/// A 200 that is not Langfuse's answer (an HTML login page, a body cut off) stored
/// nothing: the items are sent again, never marked delivered on its word.
#[test]
fn only_langfuses_own_answer_counts_as_delivered() {
    let mock = MockLangfuse::start(MockConfig::default());
    mock.script([Scripted::Html, Scripted::CutOff]);
    let dir = tempfile::tempdir().unwrap();
    let enc = otlp();
    let all = items(&*enc, &observations("sess-html", 7));
    let report = run(&config(&mock.url(), dir.path()), enc.clone(), &all, 100);
    assert_eq!(report.delivered, 7, "{report:?}");
    assert_exactly_once(&mock, &all);
    assert!(mock.posts() >= 3, "two answers were not Langfuse's");

    // Never anything else: the items wait in the spool, and the next run delivers them.
    mock.script((0..40).map(|_| Scripted::Html));
    let dir = tempfile::tempdir().unwrap();
    let more = items(&*enc, &observations("sess-html-2", 3));
    let report = run(&config(&mock.url(), dir.path()), enc.clone(), &more, 100);
    assert_eq!((report.delivered, report.spooled), (0, 3), "{report:?}");
    mock.clear_script();
    let report = run(&config(&mock.url(), dir.path()), enc, &[], 100);
    assert_eq!(report.delivered, 3, "{report:?}");
}

#[test]
fn a_hung_request_times_out_and_is_retried() {
    let mock = MockLangfuse::start(MockConfig::default());
    mock.script([Scripted::Hang(Duration::from_secs(10)), Scripted::Close]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.timeout = Duration::from_millis(300);
    let enc = otlp();
    let all = items(&*enc, &observations("sess-timeout", 5));
    let t0 = Instant::now();
    let report = run(&cfg, enc, &all, 100);
    // The request was cut at its timeout, not when the hung server (10 s) gave up.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert_eq!(report.delivered, 5, "{report:?}");
    assert_exactly_once(&mock, &all);
}

#[test]
fn a_full_queue_spills_to_disk_without_blocking_and_nothing_is_lost() {
    let mock = MockLangfuse::start(MockConfig::default());
    // The first request hangs past the timeout: the worker is stuck, the queue fills up.
    mock.script([Scripted::Hang(Duration::from_secs(3))]);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.timeout = Duration::from_millis(800);
    // One request at a time, so the hung one stops the worker (with several in flight the
    // request threads would absorb batches first; that is tested below).
    cfg.max_in_flight = Some(1);
    // Generous: a debug build on a busy 2-core machine needs many seconds to deliver ten
    // thousand items; finishing early returns as soon as all is delivered.
    cfg.shutdown_timeout = Duration::from_secs(120);
    let enc = otlp();
    let n = crate::deliver::sender::QUEUE_CAPACITY + 2000;
    let all: Vec<Item> = (0..10)
        .flat_map(|s| items(&*enc, &observations(&format!("sess-spill-{s}"), n / 10)))
        .collect();
    let d = Delivery::start(
        &cfg,
        cfg.resolve(),
        enc,
        caps(500),
        TimeCap::After(Duration::from_millis(50)),
        Backpressure::Spill,
    )
    .unwrap();
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    for it in &all {
        let o = d.offer(it.clone());
        *outcomes
            .entry(match o {
                Offered::Queued => "queued",
                Offered::Spilled => "spilled",
                _ => "other",
            })
            .or_default() += 1;
    }
    // Not blocking is the behaviour: a full queue spills instead of waiting for the stuck
    // worker (no wall-clock bound here: a loaded machine can stall any call).
    assert!(
        outcomes.get("spilled").copied().unwrap_or(0) > 0,
        "{outcomes:?}"
    );
    let report = d.finish();
    assert_eq!(report.delivered as usize, all.len(), "{report:?}");
    assert_exactly_once(&mock, &all);
}

/// One deliverer per session across processes: while one run delivers a session, a second
/// run on the same state directory leaves that session alone (no duplicate in Langfuse),
/// and runs of other sessions go on side by side.
#[test]
fn a_session_another_run_is_delivering_is_left_to_it() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&mock.url(), dir.path());
    let enc = otlp();
    let shared = items(&*enc, &observations("sess-shared", 6));
    let other = items(&*enc, &observations("sess-other", 4));
    let start = || {
        Delivery::start(
            &cfg,
            cfg.resolve(),
            enc.clone(),
            caps(100),
            TimeCap::None,
            Backpressure::Wait,
        )
        .unwrap()
    };
    let first = start();
    for it in &shared {
        first.offer(it.clone());
    }
    // The first run still holds the session (it has not finished) when the second reads it.
    let second = start();
    for it in shared.iter().chain(&other) {
        let o = second.offer(it.clone());
        if it.session_id.as_ref() == "sess-shared" {
            assert_eq!(o, Offered::Busy);
        }
    }
    let (a, b) = (first.finish(), second.finish());
    assert_eq!((a.delivered, a.busy), (6, 0), "{a:?}");
    assert_eq!((b.delivered, b.busy), (4, 6), "{b:?}");
    let mut all = shared.clone();
    all.extend(other);
    assert_exactly_once(&mock, &all);
    // Once the first is done, a third run owns the session and sends nothing again.
    let report = run(&cfg, enc.clone(), &shared, 100);
    assert_eq!(
        (report.delivered, report.skipped, report.busy),
        (0, 6, 0),
        "{report:?}"
    );
}

#[test]
fn concurrent_runs_share_a_state_dir_without_losing_or_doubling() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockLangfuse::start(MockConfig {
        fail_rate: 1.0,
        ..MockConfig::default()
    });
    let cfg = config(&mock.url(), dir.path());
    let enc = otlp();
    let a = items(&*enc, &observations("sess-a", 40));
    let b = items(&*enc, &observations("sess-b", 40));
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| run(&cfg, enc.clone(), &a, 10));
        let hb = s.spawn(|| run(&cfg, enc.clone(), &b, 10));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    // Each run reports what it left in the spool; a run that starts after the other has
    // finished also takes over (and re-spools) the other's segment.
    assert!(
        (80..=120).contains(&(ra.spooled + rb.spooled)),
        "{ra:?} {rb:?}"
    );
    mock.configure(|c| c.fail_rate = 0.0);
    let report = run(&cfg, enc, &[], 10);
    assert_eq!(report.delivered, 80, "{report:?}");
    let all: Vec<Item> = a.into_iter().chain(b).collect();
    assert_exactly_once(&mock, &all);
    // Nothing is left behind: no segments, no temp files.
    let spool_files: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("spool")))
        .collect();
    assert!(spool_files.is_empty(), "{spool_files:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn legacy_config(url: &str, state: &Path) -> DeliveryConfig {
    DeliveryConfig {
        transport: TransportChoice::Ingestion,
        ..config(url, state)
    }
}

#[test]
fn legacy_207_retries_only_5xx_events_and_rejects_4xx() {
    let mock = MockLangfuse::start(MockConfig::default());
    mock.script([
        Scripted::EventErrors { status: 500, n: 3 },
        Scripted::EventErrors { status: 400, n: 2 },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let enc: Arc<dyn Encoder> = Arc::new(IngestionEncoder);
    let all = items(&*enc, &observations("sess-207", 10));
    let report = run(&legacy_config(&mock.url(), dir.path()), enc, &all, 100);
    // Request 1: 7 accepted, 3 retried; request 2 (those 3): 2 rejected, 1 accepted.
    assert_eq!(report.delivered, 8, "{report:?}");
    assert_eq!(report.rejected, 2);
    let posts: Vec<usize> = mock
        .received()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["batch"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(posts, [10, 3]);
    assert!(mock.events().values().all(|&n| n == 1));
    assert!(
        mock.received()
            .iter()
            .all(|r| r.header("content-encoding").is_none()
                && r.header("x-langfuse-ingestion-version").is_none())
    );
}

#[test]
fn legacy_on_a_v4_server_says_to_use_otlp() {
    let mock = MockLangfuse::start(MockConfig {
        ingestion: IngestionMode::EventsOnly,
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let enc: Arc<dyn Encoder> = Arc::new(IngestionEncoder);
    let all = items(&*enc, &observations("sess-v4", 30));
    let report = run(&legacy_config(&mock.url(), dir.path()), enc, &all, 10);
    assert_eq!(report.rejected, 30);
    // After the first refusal nothing more is sent.
    assert_eq!(mock.posts(), 1);
    assert!(crate::deliver::retry::WANTS_OTLP_MESSAGE.contains("--transport otlp"));
}

#[test]
fn auto_transport_follows_the_server_version() {
    let cases = [
        (Some("4.16.0"), Wire::Otlp),
        (Some("3.63.0"), Wire::Otlp),
        (Some("3.62.1"), Wire::Ingestion),
        (Some("2.95.12"), Wire::Ingestion),
        (None, Wire::Otlp),
    ];
    for (version, wire) in cases {
        let mock = MockLangfuse::start(MockConfig {
            version: version.map(str::to_string),
            ..MockConfig::default()
        });
        let mut cfg = DeliveryConfig::new(&mock.url());
        cfg.transport = TransportChoice::Auto;
        let dest = cfg.resolve();
        assert_eq!(dest.wire, wire, "{version:?}");
        let health = mock.received();
        assert_eq!(health.len(), 1);
        assert!(
            health[0].header("authorization").is_none(),
            "health needs no auth"
        );
    }
    let mut cfg = DeliveryConfig::new(&refused_url());
    cfg.transport = TransportChoice::Auto;
    let dest = cfg.resolve();
    assert_eq!(dest.wire, Wire::Otlp);
    assert!(matches!(dest.reason, Reason::NoAnswer(_)));
}

#[test]
fn a_collector_endpoint_gets_its_own_headers() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("https://cloud.langfuse.com", dir.path());
    cfg.transport = TransportChoice::Auto;
    cfg.otlp_endpoint = Some(format!("{}/api/public/otel/v1/traces", mock.url()));
    cfg.otlp_headers = crate::deliver::http::parse_otlp_headers("x-tenant=acme").unwrap();
    let dest = cfg.resolve();
    assert_eq!(dest.reason, Reason::CustomEndpoint);
    let enc = otlp();
    let all = items(&*enc, &observations("sess-collector", 4));
    let report = run(&cfg, enc, &all, 100);
    assert_eq!(report.delivered, 4);
    // No health check went anywhere; the extra header arrived.
    let r = mock.received();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].header("x-tenant"), Some("acme"));
}

#[test]
fn no_replay_leaves_the_spool_for_later() {
    let mock = MockLangfuse::start(MockConfig {
        fail_rate: 1.0,
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    let enc = otlp();
    let all = items(&*enc, &observations("sess-noreplay", 8));
    assert_eq!(run(&cfg, enc.clone(), &all, 100).spooled, 8);
    mock.configure(|c| c.fail_rate = 0.0);
    cfg.replay = Replay::No;
    let report = run(&cfg, enc.clone(), &[], 100);
    assert_eq!((report.delivered, report.spooled), (0, 0));
    cfg.replay = Replay::Yes;
    assert_eq!(run(&cfg, enc, &[], 100).delivered, 8);
}

#[test]
fn after_a_crash_the_spool_is_replayed_without_resending_what_was_delivered() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&mock.url(), dir.path());
    let enc = otlp();
    let all = items(&*enc, &observations("sess-crash", 40));
    // A run that spilled everything, delivered the first half, then died: its segment
    // still holds all 40 lines, its ledger knows 20, and nobody called finish.
    let state = dir
        .path()
        .join(cfg.resolve().state_name(cfg.public_key.as_deref()));
    {
        let spool =
            crate::deliver::spool::Spool::open(&state.join("spool"), Wire::Otlp, Replay::Yes)
                .unwrap();
        spool.push(&all).unwrap();
        let first: Vec<Item> = spool
            .pull(20, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        let mut ledger = crate::deliver::ledger::Ledger::open(
            &state.join("ledger"),
            ResendPolicy::SkipDelivered,
        )
        .unwrap();
        ledger.record(&first).unwrap();
    }
    let report = run(&cfg, enc, &all, 100);
    assert_eq!((report.delivered, report.skipped), (20, 20), "{report:?}");
    assert_eq!(report.spooled, 0);
    assert_exactly_once(&mock, &all[20..]);
}

#[test]
fn legacy_trace_records_are_delivered_once_too() {
    let mock = MockLangfuse::start(MockConfig {
        version: Some("3.50.0".into()),
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.transport = TransportChoice::Auto;
    let dest = cfg.resolve();
    assert_eq!(dest.wire, Wire::Ingestion);
    let enc: Arc<dyn Encoder> = Arc::new(IngestionEncoder);
    let obs = observations("sess-legacy", 12);
    let mut records: Vec<Record> = vec![Record::Trace(crate::model::TraceRecord {
        ctx: obs[0].trace.clone(),
        input: Some(json!("go")),
        output: None,
        at: obs[0].start,
        seq: 0,
    })];
    records.extend(obs.into_iter().map(Record::Observation));
    let all: Vec<Item> = records.iter().filter_map(|r| enc.encode(r)).collect();
    assert_eq!(all.len(), 13);
    assert_eq!(run(&cfg, enc.clone(), &all, 5).delivered, 13);
    assert_eq!(run(&cfg, enc, &all, 5).skipped, 13);
    assert_eq!(mock.events().len(), 13);
    assert!(mock.events().values().all(|&n| n == 1));
}

/// Figures for the report (`cargo test --release measure -- --ignored --nocapture`).
#[test]
#[ignore = "measurement, not a check"]
fn measure_throughput_and_gzip_ratio() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&mock.url(), dir.path());
    let enc = otlp();
    let all: Vec<Item> = (0..20)
        .flat_map(|s| items(&*enc, &observations(&format!("bench-{s}"), 500)))
        .collect();
    for per_request in [1usize, 50, 500] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = DeliveryConfig {
            state_dir: Some(dir.path().to_path_buf()),
            ..cfg.clone()
        };
        let n = if per_request == 1 { 2000 } else { all.len() };
        let posts = mock.posts();
        let t0 = Instant::now();
        let report = run(&cfg, enc.clone(), &all[..n], per_request);
        let dt = t0.elapsed().as_secs_f64();
        let reqs = mock.posts() - posts;
        assert_eq!(report.delivered as usize, n);
        println!(
            "{per_request:>3} spans/request: {n} spans in {dt:.2} s = {:.0} spans/s, {:.0} requests/s",
            n as f64 / dt,
            reqs as f64 / dt
        );
    }
    let body = enc.body(&all[..500]);
    let gz = crate::deliver::http::gzip(&body);
    let t0 = Instant::now();
    for _ in 0..10 {
        std::hint::black_box(crate::deliver::http::gzip(&body));
    }
    println!(
        "gzip: {} → {} bytes ({:.1}x), {:.1} ms per 500-span body",
        body.len(),
        gz.len(),
        body.len() as f64 / gz.len() as f64,
        t0.elapsed().as_secs_f64() * 100.0
    );
}

#[test]
fn giving_up_at_the_deadline_does_not_loop_over_the_spool() {
    // Slow backoff and a short shutdown: retries run out of time, not of attempts.
    let mock = MockLangfuse::start(MockConfig {
        fail_rate: 1.0,
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.retry.base = Duration::from_millis(300);
    cfg.retry.cap = Duration::from_secs(5);
    cfg.shutdown_timeout = Duration::from_secs(1);
    let enc = otlp();
    let all = items(&*enc, &observations("sess-deadline", 30));
    let report = run(&cfg, enc, &all, 10);
    assert_eq!(report.spooled, 30, "{report:?}");
    // Once the first batch gave up, the rest go straight to the spool: no busy loop.
    assert!(mock.posts() <= 5, "{} requests", mock.posts());
}

/// A mock answering `delay` late, and a delivery config with four requests in flight to it
/// (the shutdown timeout generous: no timing is asserted).
fn four_in_flight_to_a_slow_mock(
    delay: Duration,
) -> (MockLangfuse, tempfile::TempDir, DeliveryConfig) {
    let mock = MockLangfuse::start(MockConfig {
        delay,
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&mock.url(), dir.path());
    cfg.max_in_flight = Some(4);
    cfg.shutdown_timeout = Duration::from_secs(60);
    (mock, dir, cfg)
}

#[test]
fn several_requests_are_in_flight_against_a_slow_server() {
    // Every answer comes 400 ms late, as over a WAN: the window opens from one request to
    // several, each batch is delivered exactly once.
    let (mock, _dir, cfg) = four_in_flight_to_a_slow_mock(Duration::from_millis(400));
    let enc = otlp();
    let all: Vec<Item> = (0..4)
        .flat_map(|s| items(&*enc, &observations(&format!("sess-flight-{s}"), 30)))
        .collect();
    let report = run(&cfg, enc, &all, 10);
    assert_eq!(report.delivered as usize, all.len(), "{report:?}");
    assert_eq!(report.batches, 12, "{report:?}");
    assert_exactly_once(&mock, &all);
    assert!(mock.max_in_flight() >= 2, "{}", mock.max_in_flight());
    assert!(mock.max_in_flight() <= 4, "{}", mock.max_in_flight());
}

#[test]
fn a_renamed_trace_still_ends_with_its_new_name_with_several_in_flight() {
    // The stale name's batches may be in flight together; the new name's batch waits for
    // them, so it is the last Langfuse sees.
    let (mock, _dir, cfg) = four_in_flight_to_a_slow_mock(Duration::from_millis(200));
    let enc = otlp();
    let old = observations("sess-rename", 24);
    let mut renamed = observations("sess-rename", 32).split_off(24);
    for o in &mut renamed {
        let mut t = (*o.trace).clone();
        t.name = "the goal".into();
        o.trace = Arc::new(t);
    }
    let mut all = items(&*enc, &old);
    all.extend(items(&*enc, &renamed));
    let report = run(&cfg, enc, &all, 4);
    assert_eq!(report.delivered as usize, all.len(), "{report:?}");
    let names: Vec<String> = mock
        .accepted()
        .iter()
        .filter_map(|s| s.attrs.get("langfuse.trace.name"))
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    let first_new = names.iter().position(|n| n == "the goal").expect("renamed");
    assert!(
        names[first_new..].iter().all(|n| n == "the goal"),
        "{names:?}"
    );
    assert!(
        names[..first_new]
            .iter()
            .all(|n| n == "session sess-rename")
    );
}
