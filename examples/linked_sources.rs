//! Recipe 10.8: injecting cancellation with linked sources. A method that
//! takes the caller's token adds a cancellation reason of its own (a
//! per-call timeout) on one combined token; cancelling the combined one never
//! cancels the caller's. The pitfalls the seeds call out are marked.
//! Run: `cargo run --example linked_sources`

use std::time::Duration;

use cancel_core::{CancelReason, CancellationSource, CancellationToken, Cancelled};

/// `GetWithTimeoutAsync` of the recipe: the user's token plus a timeout.
fn get_with_timeout(
    url: &str,
    user: &CancellationToken,
    timeout: Duration,
) -> Result<String, Cancelled> {
    // Short-lived: the linked source lives for this call only (its link
    // leaves the user's source when it is dropped or cancelled).
    let call = CancellationSource::linked([user]);
    call.cancel_after(timeout);
    // Observe the combined token inside, never the user's one alone (the
    // "wrong token in a nested operation" pitfall).
    let token = call.token();
    if token.wait_timeout(Duration::from_millis(50)) {
        return Err(token.check().unwrap_err());
    }
    Ok(format!("body of {url}"))
}

fn main() {
    let user = CancellationSource::new();
    match get_with_timeout(
        "https://example.invalid/",
        &user.token(),
        Duration::from_millis(5),
    ) {
        Ok(body) => println!("got {body}"),
        // Tell a timeout from a user cancel by the reason (or by asking the
        // user's source), never by which token is inside the error.
        Err(e) if matches!(e.reason(), CancelReason::TimedOut) => {
            println!("timed out (user cancelled: {})", user.is_cancelled())
        }
        Err(e) => println!("cancelled by the user: {e}"),
    }
    user.cancel();
    match get_with_timeout(
        "https://example.invalid/",
        &user.token(),
        Duration::from_secs(60),
    ) {
        Err(e) => println!(
            "second call: {e} (timeout? {})",
            matches!(e.reason(), CancelReason::TimedOut)
        ),
        Ok(body) => println!("got {body}"),
    }
}
