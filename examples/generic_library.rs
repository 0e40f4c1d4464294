//! A library function written once against the `Token` traits: its callers
//! choose the token (a heap `CancellationToken`, an `InplaceToken`,
//! `NeverToken` for "no cancellation", or tokio-util's token with feature
//! `tokio-util`). Over `NeverToken` the cancellation code compiles away.
//!
//! `cargo run --example generic_library`

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};

use cancel_core::{
    CallbackToken, CancellationSource, Cancelled, InplaceSource, NeverToken, PinnedCallback, Token,
};

/// The library: checksums chunks until done or cancelled.
fn checksum(token: &impl Token, chunks: &[&[u8]]) -> Result<u32, Cancelled> {
    let mut sum = 0u32;
    for chunk in chunks {
        token.check()?;
        sum = chunk
            .iter()
            .fold(sum, |s, &b| s.rotate_left(5) ^ u32::from(b));
    }
    Ok(sum)
}

/// Another: async, and with a callback that aborts "I/O" in place.
async fn download(
    token: &impl CallbackToken,
    aborted: &'static AtomicBool,
) -> Result<u32, Cancelled> {
    let mut on_cancel = pin!(token.callback(|| aborted.store(true, Ordering::SeqCst)));
    on_cancel.as_mut().register();
    token.check()?;
    // ... await the transfer, racing token.cancelled() ...
    Ok(7)
}

static ABORTED: AtomicBool = AtomicBool::new(false);

fn main() {
    let chunks: [&[u8]; 2] = [b"hello", b"world"];

    let never = checksum(&NeverToken, &chunks);
    let heap = CancellationSource::new();
    let on_heap = checksum(&heap.token(), &chunks);
    let inplace = InplaceSource::new();
    let in_place = checksum(&inplace.token(), &chunks);
    assert_eq!(never, on_heap);
    assert_eq!(on_heap, in_place);
    println!("checksum: {:?}", never.unwrap());

    inplace.cancel();
    assert!(checksum(&inplace.token(), &chunks).is_err());
    println!(
        "cancelled in place: {:?}",
        checksum(&inplace.token(), &chunks)
    );

    assert_eq!(
        futures::executor::block_on(download(&NeverToken, &ABORTED)),
        Ok(7)
    );
    assert!(futures::executor::block_on(download(&inplace.token(), &ABORTED)).is_err());
    assert!(
        ABORTED.load(Ordering::SeqCst),
        "registered on a cancelled token: ran at once"
    );
    println!("download over a cancelled token aborted its I/O");
}
