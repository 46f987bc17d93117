//! Panics the VMM survives on purpose, told apart from those it must not.
//!
//! A thread that runs guest-driven code (a device worker, a vCPU) catches
//! its panics with [`catch`] and turns them into a reported failure (the
//! device needs a reset, the VM stops with an error). Every other panic in
//! the VMM is a bug that leaves it in an unknown state: the process-wide
//! panic hook the VMM installs ([`is_caught_here`] tells it which case it
//! is in) ends the process then, instead of leaving a thread silently dead
//! and the container hanging.

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    /// How many [`catch`] calls are active on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f`, returning the panic message if it panicked.
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    DEPTH.with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    result.map_err(|payload| message(payload.as_ref()))
}

/// Is a panic on this thread, now, going to be caught by [`catch`]?
pub fn is_caught_here() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_are_caught_with_their_message_and_the_guard_is_scoped() {
        assert!(!is_caught_here());
        assert_eq!(catch(|| 7), Ok(7));
        let inside = catch(is_caught_here);
        assert_eq!(inside, Ok(true));
        let n = 3;
        assert_eq!(
            catch(|| -> () { panic!("queue {n} broke") }),
            Err("queue 3 broke".to_string())
        );
        assert_eq!(
            catch(|| -> () { panic!("static text") }),
            Err("static text".to_string())
        );
        assert!(!is_caught_here(), "the guard ends with catch");
    }
}
