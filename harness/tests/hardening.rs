//! The tap under hostile input: seeded, mutated MQTT frames against a running broker.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hil::trace::EventBody;
use rumqttc::QoS;
use support::{broker, Client, DEADLINE};

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test]
async fn ten_thousand_mutated_frames_leave_the_broker_serving() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let (broker, trace) = broker().await;
    let addr = broker.addr();

    // A well-behaved client talks through the whole run.
    let mut listener = Client::connect("steady-sub", addr).await;
    listener
        .client
        .subscribe("steady", QoS::AtLeastOnce)
        .await
        .unwrap();
    let talker = Client::connect("steady-pub", addr).await;
    let fuzz = tokio::spawn(hil::fuzz::run(
        addr,
        hil::fuzz::cases(0x5eed, 10_000),
        16,
        Duration::from_millis(50),
    ));
    // Far beyond what the run takes even in a debug build on a loaded runner: reached,
    // it means the fuzz (or the tap) hangs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut exchanged = 0;
    while !fuzz.is_finished() {
        if tokio::time::Instant::now() > deadline {
            fuzz.abort();
            panic!("the fuzz run did not finish within 120s ({exchanged} messages exchanged meanwhile)");
        }
        talker
            .client
            .publish("steady", QoS::AtLeastOnce, false, exchanged.to_string())
            .await
            .unwrap();
        let got = tokio::time::timeout(DEADLINE, listener.publishes.recv())
            .await
            .expect("served during the fuzz")
            .unwrap();
        assert_eq!(got.payload, exchanged.to_string().as_bytes());
        exchanged += 1;
    }
    let report = fuzz.await.unwrap().expect("every case ran");
    assert_eq!(report.cases, 10_000);
    assert!(exchanged > 0);

    broker.stop().await.unwrap();
    let events = trace.events_from(0);
    let opened = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::ConnOpened { .. }))
        .count();
    let closed = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::ConnClosed { .. }))
        .count();
    assert!(opened >= 10_000, "{opened} connections");
    assert_eq!(opened, closed, "every connection's task ran to its end");
    let malformed = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::Malformed { .. }))
        .count();
    assert!(
        malformed > 1_000,
        "most mutations are caught as malformed ({malformed})"
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "no panic anywhere");
}
