//! `arbiter.v1.PlanRollout`: a rolling restart simulated on a copy of the state.
//!
//! The writer only copies the state (with its `now`); the simulation, which re-checks the
//! rollout's task once per event, runs on a blocking thread so that it never holds up the
//! writer. Nothing is stored and nothing changes.

use super::Context;
use super::error::ServiceError;
use crate::engine::cluster::NodeId;
use crate::engine::plan::{PlanRequest, RolloutPlan};
use crate::engine::state::MAX_ACTIONS_PER_TASK;
use crate::engine::task::Mode;
use crate::identity::Caller;
use arbiter_proto::arbiter::v1::{PlanBlocked, PlanRolloutRequest, PlanRolloutResponse, PlanWave};
use arbiter_proto::ydb::maintenance::AvailabilityMode;
use std::collections::BTreeSet;
use std::time::Duration;
use tonic::Status;

/// The longest time per node a plan takes.
pub const MAX_TIME_PER_NODE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Validates the request, copies the state and plans on the copy.
pub(super) async fn plan_rollout(
    ctx: &Context,
    caller: &Caller,
    req: PlanRolloutRequest,
) -> Result<PlanRolloutResponse, Status> {
    let plan = decode(req, &caller.user)?;
    let nodes = plan.nodes.clone();
    let (state, now) = ctx
        .query(move |s, now| {
            let unknown: Vec<String> = nodes
                .iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|id| s.cluster().node(**id).is_none())
                .map(ToString::to_string)
                .collect();
            if !unknown.is_empty() {
                return Err(ServiceError::BadRequest(format!(
                    "unknown node_ids: {} (not in the inventory)",
                    unknown.join(", ")
                )));
            }
            Ok((s.clone(), now))
        })
        .await
        .map_err(|e| e.to_grpc())?;
    let planned = tokio::task::spawn_blocking(move || state.plan_rollout(&plan, now))
        .await
        .map_err(|_| Status::internal("the plan failed"))?
        .map_err(|e| ServiceError::from(e).to_grpc())?;
    Ok(encode(&planned))
}

fn decode(req: PlanRolloutRequest, owner: &str) -> Result<PlanRequest, Status> {
    if req.node_ids.is_empty() {
        return Err(Status::invalid_argument(
            "node_ids is empty: name the nodes to plan",
        ));
    }
    if req.node_ids.len() > MAX_ACTIONS_PER_TASK {
        return Err(Status::invalid_argument(format!(
            "too many node_ids: {}, a rollout's task holds at most {MAX_ACTIONS_PER_TASK}",
            req.node_ids.len()
        )));
    }
    let mode = match AvailabilityMode::try_from(req.availability_mode) {
        Ok(AvailabilityMode::Strong) => Mode::Strong,
        Ok(AvailabilityMode::Weak) => Mode::Weak,
        Ok(AvailabilityMode::Force) => Mode::Force,
        Ok(AvailabilityMode::Smart) => Mode::Smart,
        Ok(AvailabilityMode::Unspecified) | Err(_) => {
            return Err(Status::invalid_argument(format!(
                "availability_mode {} is not a mode (strong, weak, force or smart)",
                req.availability_mode
            )));
        }
    };
    let time_per_node = time_per_node(req.time_per_node)?;
    Ok(PlanRequest {
        nodes: req.node_ids as Vec<NodeId>,
        mode,
        priority: req.priority,
        inflight: req.inflight,
        time_per_node,
        owner: owner.to_owned(),
    })
}

fn time_per_node(d: Option<prost_types::Duration>) -> Result<Duration, Status> {
    let Some(d) = d else {
        return Err(Status::invalid_argument(
            "time_per_node is needed: how long one node takes (restart and back up)",
        ));
    };
    let (Ok(secs), Ok(nanos)) = (u64::try_from(d.seconds), u32::try_from(d.nanos)) else {
        return Err(Status::invalid_argument(
            "time_per_node must not be negative",
        ));
    };
    if nanos >= 1_000_000_000 {
        return Err(Status::invalid_argument(
            "time_per_node: nanos must be below one second",
        ));
    }
    let t = Duration::new(secs, nanos);
    if t.is_zero() {
        return Err(Status::invalid_argument("time_per_node must be positive"));
    }
    if t > MAX_TIME_PER_NODE {
        return Err(Status::invalid_argument(format!(
            "time_per_node is longer than {}",
            humantime::format_duration(MAX_TIME_PER_NODE)
        )));
    }
    Ok(t)
}

fn encode(plan: &RolloutPlan) -> PlanRolloutResponse {
    let d = plan.estimate;
    PlanRolloutResponse {
        waves: plan
            .waves
            .iter()
            .map(|w| PlanWave {
                node_ids: w.clone(),
            })
            .collect(),
        blocked: plan
            .blocked
            .iter()
            .map(|(id, why)| PlanBlocked {
                node_id: *id,
                reason: why.clone(),
            })
            .collect(),
        estimate: Some(prost_types::Duration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(nodes: Vec<u32>, mode: AvailabilityMode, t: Option<(i64, i32)>) -> PlanRolloutRequest {
        PlanRolloutRequest {
            node_ids: nodes,
            availability_mode: mode as i32,
            priority: 0,
            inflight: 2,
            time_per_node: t.map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
        }
    }

    fn refusal(r: PlanRolloutRequest) -> String {
        let s = decode(r, "me").expect_err("refused");
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        s.message().to_owned()
    }

    #[test]
    fn requests_are_decoded_and_bad_ones_refused() {
        let ok = decode(req(vec![3, 1], AvailabilityMode::Weak, Some((90, 0))), "me").expect("ok");
        assert_eq!(ok.nodes, vec![3, 1]);
        assert_eq!(ok.mode, Mode::Weak);
        assert_eq!(ok.inflight, 2);
        assert_eq!(ok.time_per_node, Duration::from_secs(90));
        let strong = AvailabilityMode::Strong;
        assert!(refusal(req(vec![], strong, Some((1, 0)))).contains("node_ids is empty"));
        let many = vec![1; MAX_ACTIONS_PER_TASK + 1];
        assert!(refusal(req(many, strong, Some((1, 0)))).contains("too many node_ids"));
        let unspecified = AvailabilityMode::Unspecified;
        assert!(refusal(req(vec![1], unspecified, Some((1, 0)))).contains("not a mode"));
        assert!(refusal(req(vec![1], strong, None)).contains("time_per_node is needed"));
        assert!(refusal(req(vec![1], strong, Some((0, 0)))).contains("positive"));
        assert!(refusal(req(vec![1], strong, Some((-1, 0)))).contains("negative"));
        assert!(refusal(req(vec![1], strong, Some((0, 2_000_000_000)))).contains("nanos"));
        assert!(refusal(req(vec![1], strong, Some((8 * 24 * 3600, 0)))).contains("longer"));
    }

    #[test]
    fn a_plan_is_encoded_in_order() {
        let plan = RolloutPlan {
            waves: vec![vec![1, 4], vec![2]],
            blocked: vec![(3, "locked by task 'x'".into())],
            estimate: Duration::from_millis(2500),
        };
        let r = encode(&plan);
        assert_eq!(r.waves.len(), 2);
        assert_eq!(r.waves[0].node_ids, vec![1, 4]);
        assert_eq!(r.blocked[0].node_id, 3);
        assert_eq!(r.blocked[0].reason, "locked by task 'x'");
        let e = r.estimate.expect("estimate");
        assert_eq!((e.seconds, e.nanos), (2, 500_000_000));
    }
}
