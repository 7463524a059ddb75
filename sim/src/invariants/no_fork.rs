//! No fork: one root per (origin, size), across everything any node signed or any client saw.
//!
//! Source: docs/ARCHITECTURE.md, "Invariants of the log" 3 (at most one checkpoint per size per
//! origin).

use tlog::Hash;

use super::Checker;

/// Records a verified checkpoint and reports a second root for its size.
pub fn record(checker: &mut Checker, origin: &str, size: u64, root: Hash, whence: &str) {
    match checker.roots.get(&(origin.to_string(), size)) {
        Some(known) if *known != root => {
            let known = *known;
            checker.violation(
                "no fork",
                format!(
                    "{origin} size {size}: root {root:?} from {whence}, but {known:?} seen before"
                ),
            );
        }
        Some(_) => {}
        None => {
            checker.roots.insert((origin.to_string(), size), root);
        }
    }
}
