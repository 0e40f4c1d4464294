//! A deadline crossing the wire, as gRPC carries it in `grpc-timeout`.
//!
//! A server receives a request whose header says how long the caller will
//! wait. It makes the request's source from it, linked to its own shutdown
//! token, and passes the time that remains on to the backend it calls; the
//! backend does the same. A bad header value is refused with a clear error
//! (gRPC's INVALID_ARGUMENT), never a panic.
//!
//! The clock here is a `ManualClock`, so the run is the same every time;
//! a real server uses `Timer::system()` (or `Timer::tokio`) instead.
//!
//! Run: `cargo run --example grpc_deadline`

use std::time::Duration;

use cancel_core::time::{Timer, grpc};
use cancel_core::{CancelOrigin, CancellationSource, CancellationToken, ManualClock};

/// A request as it arrives: its headers.
struct Incoming<'a> {
    grpc_timeout: Option<&'a [u8]>,
}

/// The server side of one hop: the request's source, cancelled when the
/// caller's deadline passes or the server shuts down.
fn accept(
    server: &CancellationToken,
    timer: &Timer,
    request: &Incoming<'_>,
) -> Result<CancellationSource, grpc::GrpcTimeoutError> {
    let source = server.child();
    if let Some(value) = request.grpc_timeout {
        timer.cancel_after(&source, grpc::decode(value)?);
    }
    Ok(source)
}

/// The client side of the next hop: the header to send, from what remains.
fn outgoing_header(request: &CancellationToken) -> Option<String> {
    request
        .deadline()
        .map(|deadline| deadline.to_grpc_timeout().to_string())
}

fn main() {
    let clock = ManualClock::new();
    let timer = clock.timer();
    let shutdown = CancellationSource::new();

    // 1. A caller allows 2 s. The frontend spends 500 ms, then calls the
    //    backend with what is left.
    let frontend = accept(
        &shutdown.token(),
        &timer,
        &Incoming {
            grpc_timeout: Some(b"2S"),
        },
    )
    .expect("a valid header");
    clock.advance(Duration::from_millis(500));
    let header = outgoing_header(&frontend.token()).expect("the request has a deadline");
    println!("frontend -> backend  grpc-timeout: {header}");
    assert_eq!(header, "1500000u");

    let backend = accept(
        &shutdown.token(),
        &timer,
        &Incoming {
            grpc_timeout: Some(header.as_bytes()),
        },
    )
    .expect("a header we made ourselves");

    // 2. Time runs out: both hops time out at the same moment, each on its
    //    own timer (origin: Timeout, not the server's shutdown).
    clock.advance(Duration::from_millis(1500));
    for (name, source) in [("frontend", &frontend), ("backend", &backend)] {
        println!(
            "{name}: reason {:?}, origin {:?}",
            source.reason(),
            source.origin()
        );
        assert!(source.reason().unwrap().is_timed_out());
        assert_eq!(source.origin(), Some(CancelOrigin::Timeout));
    }

    // 3. A request with no deadline ends with the server's shutdown, and
    //    says so.
    let patient = accept(&shutdown.token(), &timer, &Incoming { grpc_timeout: None }).unwrap();
    assert!(
        outgoing_header(&patient.token()).is_none(),
        "no deadline: no header"
    );
    shutdown.cancel();
    println!(
        "patient request: reason {:?}, origin {:?}",
        patient.reason(),
        patient.origin()
    );
    assert_eq!(patient.origin(), Some(CancelOrigin::Parent));

    // 4. A bad header value is a typed error.
    for bad in [&b"1.5S"[..], b"123456789m", b"10s", b""] {
        let error = accept(
            &CancellationToken::none(),
            &timer,
            &Incoming {
                grpc_timeout: Some(bad),
            },
        )
        .unwrap_err();
        println!(
            "{:?} -> INVALID_ARGUMENT: {error}",
            String::from_utf8_lossy(bad)
        );
    }
    println!("ok");
}
