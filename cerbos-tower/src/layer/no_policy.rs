//! [`KindWatch`]: a resource kind that no policy matches (a typo such as
//! `"documnet"`) is logged once, at WARN, with its name.
//!
//! The PDP answers such a check with `EFFECT_DENY` for every action, like
//! any denial; only the answer's meta tells them apart (`matchedPolicy:
//! "NO_MATCH"` for every action, measured against PDP 0.55). So the first
//! checks of each kind ask for meta, until one usable answer has been
//! seen; the later ones do not. The set of kinds seen is bounded by
//! [`MAX_KINDS`]: past it, new kinds are not watched.

use std::{
    collections::HashSet,
    sync::{Mutex, PoisonError},
};

use crate::CheckResourcesResponse;

/// The most kinds remembered (an application has a few dozen; an
/// in-handler check whose kind comes from the request must not grow the
/// set without bound).
pub(crate) const MAX_KINDS: usize = 1024;

/// What the PDP's meta says when no policy decided an action.
const NO_MATCH: &str = "NO_MATCH";

/// The kinds whose policy coverage is known.
#[derive(Debug, Default)]
pub(crate) struct KindWatch {
    seen: Mutex<HashSet<String>>,
}

impl KindWatch {
    /// `true` if a check of `kind` should ask for meta: no usable answer
    /// about it yet, and room to remember it.
    pub(crate) fn wants_meta(&self, kind: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.len() < MAX_KINDS && !seen.contains(kind)
    }

    /// Reads the meta of an answer about `kind` asked with
    /// [`wants_meta`](Self::wants_meta): remembers the kind, and the first
    /// time, warns if no policy matched any of its actions.
    pub(crate) fn inspect(&self, kind: &str, answer: &CheckResourcesResponse) {
        let Some(meta) = answer.results().first().and_then(|result| result.meta()) else {
            return;
        };
        if meta.actions.is_empty() {
            return;
        }
        let unmatched = meta
            .actions
            .values()
            .all(|action| action.matched_policy.is_empty() || action.matched_policy == NO_MATCH);
        let first = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            seen.len() < MAX_KINDS && seen.insert(kind.to_owned())
        };
        if first && unmatched {
            tracing::warn!(
                kind,
                "no Cerbos policy matched resource kind {kind:?}: every check of it is denied. \
                 Is the kind misspelt, or its resource policy (or its version or scope) \
                 missing from the PDP?"
            );
        }
    }
}
