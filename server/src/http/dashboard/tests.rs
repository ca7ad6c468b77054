//! The dashboard's tests.
use super::*;
use crate::engine::inventory::{self, Format};
use crate::engine::task::{LockRequest, Mode, TaskRequest};
use std::sync::Arc;

const T0: Timestamp = Timestamp(1_000_000);

fn state() -> State {
    let mut text = String::from("[limits]\nmax_unavailable_ratio = 0\n");
    for id in 1..=4 {
        let dc = if id <= 2 { "dc-1" } else { "dc-2" };
        text.push_str(&format!(
            "[[nodes]]\nid = {id}\nhost = \"h{id}.example\"\nport = 1\n\
             data_center = \"{dc}\"\nrack = \"r{id}\"\n"
        ));
    }
    State::new(Arc::new(
        inventory::parse(&text, Format::Toml).expect("inventory"),
    ))
}

fn req(uid: &str, node: u32) -> TaskRequest {
    let lock = LockRequest {
        scope: Scope::Node(node),
        duration: None,
        kind: Default::default(),
    };
    TaskRequest::of(uid, Mode::Strong, vec![vec![lock]])
}

#[test]
fn the_page_sees_locks_holders_holds_and_what_waits_for_a_node() {
    let mut st = state();
    let dc = FreezeScope::DataCenter("dc-2".into());
    st.freeze_on(dc, "alice", "incident 4711", None, T0)
        .expect("freeze");
    st.create(req("t1", 1), T0).expect("create");
    st.create(req("t2", 3), T0).expect("create");
    let ui = UiState::of(&st, T0, false);

    let n1 = ui.nodes.iter().find(|n| n.id == 1).expect("node 1");
    assert_eq!(
        (n1.display, n1.dc.as_str(), n1.rack.as_str()),
        ("locked", "dc-1", "r1")
    );
    let lock = n1.lock.as_ref().expect("locked");
    assert_eq!((lock.task.as_str(), lock.owner.as_str()), ("t1", "me"));
    let n3 = ui.nodes.iter().find(|n| n.id == 3).expect("node 3");
    assert_eq!(
        (n3.display, n3.waiting.clone()),
        ("up", vec!["t2".to_owned()])
    );

    let t2 = ui.tasks.iter().find(|t| t.uid == "t2").expect("t2");
    assert_eq!(t2.status, "waiting");
    let a = &t2.actions[0];
    assert_eq!(
        (a.state, a.reason, a.hold),
        ("pending", Some("FROZEN"), Some("frozen"))
    );
    assert!(a.details.contains("incident 4711"), "{}", a.details);
    assert_eq!(ui.freezes[0].name, "dc-2");
    // Newest first: the grant of t1 comes after its creation.
    assert!(ui.audit.windows(2).all(|w| w[0].seq > w[1].seq));
}

#[test]
fn schedules_read_as_people_write_them() {
    let weekdays = [true, true, true, true, true, false, false];
    assert_eq!(schedule(&weekdays, 22 * 60, 4 * 60), "Mon-Fri 22:00-04:00");
    assert_eq!(schedule(&[true; 7], 0, 1440), "every day 00:00-24:00");
    let odd = [true, false, true, false, false, false, true];
    assert_eq!(schedule(&odd, 60, 120), "Mon, Wed, Sun 01:00-02:00");
}

#[test]
fn every_hold_has_words() {
    assert_eq!(reason_words(Reason::Frozen).2, Some("frozen"));
    assert_eq!(reason_words(Reason::OutsideWindow).2, Some("window"));
    assert_eq!(reason_words(Reason::RateBudget).2, Some("budget"));
    assert_eq!(reason_words(Reason::Generic).2, None);
}
