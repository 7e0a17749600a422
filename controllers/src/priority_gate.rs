//! The scheduler's queue order: scheduling passes wait here for a turn, and
//! turns go to the highest priority first, then first come first served.
//!
//! Karmada's scheduler keeps its pending bindings in a priority queue
//! (`PriorityBasedScheduling`): a binding with a higher
//! `spec.schedulePriority.priority` is scheduled before those waiting with a
//! lower one, and bindings of one priority in the order they arrived. The
//! scheduler here is a kube-runtime controller that reconciles many bindings
//! at once; a [`PriorityGate`] with `n` turns makes the passes that need
//! the scheduling algorithm and its writes go `n` at a time in that order,
//! while the passes that find nothing to do do not wait.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Hands out `turns` turns at a time, to the highest priority waiting.
#[derive(Clone)]
pub struct PriorityGate {
    state: Arc<Mutex<State>>,
}

struct State {
    free: usize,
    next_seq: u64,
    waiting: BinaryHeap<Waiter>,
}

struct Waiter {
    priority: i32,
    seq: u64,
    turn: oneshot::Sender<Turn>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    /// The greatest waiter goes first: higher priority, then earlier arrival.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// A turn; the next waiter gets it when this is dropped.
pub struct Turn {
    gate: PriorityGate,
    held: bool,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.held {
            self.gate.release();
        }
    }
}

impl PriorityGate {
    /// A gate letting `turns` (at least one) passes through at a time.
    pub fn new(turns: usize) -> Self {
        PriorityGate {
            state: Arc::new(Mutex::new(State {
                free: turns.max(1),
                next_seq: 0,
                waiting: BinaryHeap::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a turn at `priority`.
    pub async fn turn(&self, priority: i32) -> Turn {
        let rx = {
            let mut s = self.lock();
            if s.free > 0 && s.waiting.is_empty() {
                s.free -= 1;
                return Turn {
                    gate: self.clone(),
                    held: true,
                };
            }
            let (tx, rx) = oneshot::channel();
            let seq = s.next_seq;
            s.next_seq += 1;
            s.waiting.push(Waiter {
                priority,
                seq,
                turn: tx,
            });
            rx
        };
        match rx.await {
            Ok(turn) => turn,
            // the gate is gone (cannot happen while `self` lives): go ahead
            Err(_) => Turn {
                gate: self.clone(),
                held: false,
            },
        }
    }

    /// How many passes are waiting for a turn.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Passes a freed turn to the best waiter still waiting, or keeps it.
    fn release(&self) {
        loop {
            let next = {
                let mut s = self.lock();
                match s.waiting.pop() {
                    Some(w) => w,
                    None => {
                        s.free += 1;
                        return;
                    }
                }
            };
            let turn = Turn {
                gate: self.clone(),
                held: true,
            };
            match next.turn.send(turn) {
                Ok(()) => return,
                // that waiter gave up (its reconcile was cancelled): the next one
                Err(mut unsent) => unsent.held = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn higher_priority_first_then_arrival_order() {
        let gate = PriorityGate::new(1);
        let first = gate.turn(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, priority) in [
            ("low-a", 1),
            ("high-a", 100),
            ("low-b", 1),
            ("high-b", 100),
            ("mid", 50),
        ] {
            let (g, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = g.turn(priority).await;
                order.lock().unwrap().push(name);
            }));
            // arrival order is the spawn order
            while gate.waiting() < tasks.len() {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            vec!["high-a", "high-b", "mid", "low-a", "low-b"]
        );
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_the_turn() {
        let gate = PriorityGate::new(1);
        let first = gate.turn(0).await;
        let g = gate.clone();
        let quitter = tokio::spawn(async move {
            let _t = g.turn(10).await;
        });
        while gate.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        let g = gate.clone();
        let patient = tokio::spawn(async move { g.turn(1).await.held });
        while gate.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        quitter.abort();
        let _ = quitter.await;
        drop(first);
        assert!(patient.await.unwrap());
        // and the turn came back after the patient one finished
        assert!(gate.turn(0).await.held);
    }

    #[tokio::test]
    async fn several_turns_at_once() {
        let gate = PriorityGate::new(2);
        let a = gate.turn(0).await;
        let b = gate.turn(0).await;
        let g = gate.clone();
        let c = tokio::spawn(async move { g.turn(0).await.held });
        while gate.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        drop(a);
        assert!(c.await.unwrap());
        drop(b);
    }
}
