//! Panics inside a storage library become errors.
//!
//! redb trusts its file: on one damaged outside redb, an open or a read may panic (debug builds
//! assert, slices go out of bounds). Whatever the file holds, no panic may escape from the store:
//! [`contain`] runs a closure under `catch_unwind` and turns a panic into its message. While such a
//! closure runs, the process's panic hook stays quiet on this thread (no "thread panicked" line,
//! no backtrace note): the panic is reported once, as the store's error. Panics anywhere else
//! still go to the previous hook, unchanged.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many [`contain`] scopes are open on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// What the hook saw of the last contained panic (message and location).
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs (once per process) a hook that is silent inside [`contain`] and defers to the
/// previous hook everywhere else.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if DEPTH.with(Cell::get) > 0 {
                LAST.with(|l| *l.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic in it is returned as `Err(what it said, and where)`.
///
/// `f` must leave nothing behind that a panic half-way could break for the caller: the callers
/// here drop the database handle or the transaction the panic came from.
pub(super) fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    result.map_err(|payload| {
        LAST.with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| payload_text(payload.as_ref()))
    })
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_the_scope_ends() {
        let err = contain(|| -> u32 { panic!("boom {}", 7) }).expect_err("panicked");
        assert!(err.contains("boom 7"), "{err}");
        assert_eq!(contain(|| 5).expect("no panic"), 5);
        assert_eq!(DEPTH.with(Cell::get), 0);
    }

    #[test]
    fn nested_scopes_stay_contained() {
        let outer = contain(|| contain(|| -> () { panic!("inner") }));
        let inner = outer.expect("the outer scope did not panic");
        assert!(inner.expect_err("inner panicked").contains("inner"));
        assert_eq!(DEPTH.with(Cell::get), 0);
    }
}
