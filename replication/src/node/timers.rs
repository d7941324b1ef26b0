//! Periodic tasks as a table: an enum of timers indexing one array of deadlines, fired in the
//! enum's order.

use crate::time::Time;
use std::marker::PhantomData;

/// A set of timers. `ALL` lists every one in firing order; `index` is its place in `ALL`.
pub(crate) trait TimerKind: Copy + 'static {
    const ALL: &'static [Self];
    fn index(self) -> usize;
}

/// One deadline per timer of `K`; `N` is `K::ALL.len()`.
#[derive(Debug)]
pub(crate) struct Timers<K, const N: usize> {
    at: [Option<Time>; N],
    kind: PhantomData<K>,
}

impl<K: TimerKind, const N: usize> Default for Timers<K, N> {
    fn default() -> Self {
        debug_assert_eq!(K::ALL.len(), N);
        Timers { at: [None; N], kind: PhantomData }
    }
}

impl<K: TimerKind, const N: usize> Timers<K, N> {
    pub fn set(&mut self, timer: K, at: Time) {
        self.at[timer.index()] = Some(at);
    }

    pub fn clear(&mut self, timer: K) {
        self.at[timer.index()] = None;
    }

    pub fn clear_all(&mut self) {
        self.at = [None; N];
    }

    pub fn get(&self, timer: K) -> Option<Time> {
        self.at[timer.index()]
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Time> {
        self.at.iter().flatten().copied().min()
    }

    /// Disarms `timer` if it is due at `now`, and says whether it was.
    pub fn take_due(&mut self, timer: K, now: Time) -> bool {
        let slot = &mut self.at[timer.index()];
        let due = slot.is_some_and(|at| at <= now);
        if due {
            *slot = None;
        }
        due
    }
}
