//! Open agent order streams: one `tokio::sync::watch` channel per node holding its agent's
//! latest orders, so a slow agent sees the newest orders rather than a backlog.
//!
//! The writer publishes a node's orders after the commit that changed them (never before:
//! an agent must not drain for a grant that could still be lost). A node counts as having its
//! agent connected (for the engine's checks) from the subscription until the last of its
//! streams closes: the stream's [`AgentSubscription`] tells the writer when it drops.

use crate::engine::NodeId;
use crate::engine::drain::Orders;
use std::collections::HashMap;
use tokio::sync::watch;

/// Every node with an open order stream.
#[derive(Default)]
pub struct AgentHub {
    by_node: HashMap<NodeId, watch::Sender<Orders>>,
}

impl AgentHub {
    /// Opens a stream for `node`, whose orders are `now`. An open channel keeps its value (the
    /// last one published after a commit); a new one starts from `now`, which its only receiver
    /// gets after the commit of the batch that opened it.
    pub fn subscribe(&mut self, node: NodeId, now: Orders) -> watch::Receiver<Orders> {
        self.by_node
            .entry(node)
            .or_insert_with(|| watch::channel(now).0)
            .subscribe()
    }

    /// Tells the agents of `node` their orders now, if they changed.
    pub fn publish(&mut self, node: NodeId, orders: Orders) {
        if let Some(p) = self.prepare(node, orders) {
            p.send();
        }
    }

    /// The orders of `node`, to tell its agents once the batch that made them is durable.
    pub fn prepare(&mut self, node: NodeId, orders: Orders) -> Option<OrdersPublication> {
        let tx = self.by_node.get(&node)?.clone();
        Some(OrdersPublication { tx, orders })
    }

    /// Whether `node` has an open stream.
    pub fn is_open(&self, node: NodeId) -> bool {
        self.by_node.contains_key(&node)
    }

    /// Forgets the channel of `node` once its last stream closed.
    pub fn prune(&mut self, node: NodeId) {
        if self
            .by_node
            .get(&node)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            self.by_node.remove(&node);
        }
    }

    /// How many nodes have an open stream.
    pub fn open(&self) -> usize {
        self.by_node.len()
    }
}

/// A node's orders on their way to its agents.
#[derive(Debug)]
pub struct OrdersPublication {
    tx: watch::Sender<Orders>,
    orders: Orders,
}

impl OrdersPublication {
    /// Tells the agents, if the orders changed.
    pub fn send(self) {
        let orders = self.orders;
        self.tx.send_if_modified(|o| {
            if *o == orders {
                return false;
            }
            *o = orders;
            true
        });
    }
}

/// One agent's end of its order stream. Dropping it tells the writer the stream closed.
pub struct AgentSubscription {
    /// The node's latest orders; `changed()` wakes on every update.
    pub orders: watch::Receiver<Orders>,
    /// The node's host, as the inventory has it.
    pub host: String,
    /// Declared after `orders`, so the receiver is gone when the writer prunes.
    _detach: Detach,
}

impl AgentSubscription {
    pub(crate) fn new(
        orders: watch::Receiver<Orders>,
        host: String,
        detach: Box<dyn FnOnce() + Send>,
    ) -> Self {
        AgentSubscription {
            orders,
            host,
            _detach: Detach(Some(detach)),
        }
    }
}

impl std::fmt::Debug for AgentSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentSubscription")
    }
}

struct Detach(Option<Box<dyn FnOnce() + Send>>);

impl Drop for Detach {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::drain::Order;

    fn orders(drain: Order) -> Orders {
        Orders {
            drain,
            cordon: Order::Idle,
        }
    }

    #[test]
    fn an_agent_sees_only_changed_orders_and_a_closed_node_is_pruned() {
        let mut hub = AgentHub::default();
        let mut rx = hub.subscribe(4, orders(Order::Idle));
        assert!(hub.is_open(4));
        hub.publish(4, orders(Order::Idle));
        assert!(!rx.has_changed().expect("open"));
        let work = Order::Do {
            task: "t".into(),
            action: "a-1".into(),
        };
        hub.publish(4, orders(work.clone()));
        assert!(rx.has_changed().expect("open"));
        assert_eq!(rx.borrow_and_update().drain, work);
        hub.prune(4);
        assert!(hub.is_open(4), "a receiver is still open");
        drop(rx);
        hub.prune(4);
        assert!(!hub.is_open(4));
        assert_eq!(hub.open(), 0);
    }
}
