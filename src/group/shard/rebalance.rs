//! Membership and rebalances: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, with the
//! join/sync/session timers they arm (Kafka's classic group protocol).

use super::*;

impl GroupShard {
    // ------------------------------------------------------------------ JoinGroup

    pub fn join_group(
        &mut self,
        req: JoinRequest,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        if req.group_id.is_empty() {
            let _ = reply.send(JoinResult::error(&req.member_id, Error::InvalidGroupId));
            return Vec::new();
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            let _ = reply.send(JoinResult::error(
                &req.member_id,
                Error::InvalidSessionTimeout,
            ));
            return Vec::new();
        }
        let unknown_member = req.member_id.is_empty();
        if !self.groups.contains_key(&req.group_id) {
            if !unknown_member {
                let _ = reply.send(JoinResult::error(&req.member_id, Error::UnknownMemberId));
                return Vec::new();
            }
            self.groups
                .insert(req.group_id.clone(), ClassicGroup::new(&req.group_id, now));
        }
        let max_size = self.config.max_size;
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return Vec::new();
        };
        let accept = match g.state() {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                g.member(&req.member_id)
                    .is_some_and(Member::is_awaiting_join)
                    || g.num_awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                g.has_member(&req.member_id) || g.size() < max_size
            }
        };
        if !accept {
            g.remove(&req.member_id);
            let _ = reply.send(JoinResult::error("", Error::GroupMaxSizeReached));
            return Vec::new();
        }
        if unknown_member {
            self.join_new_member(req, reply, now)
        } else {
            self.join_existing_member(req, reply, now)
        }
    }

    fn join_new_member(
        &mut self,
        req: JoinRequest,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        let Some(g) = self.groups.get(&req.group_id) else {
            return Vec::new();
        };
        if g.is(GroupState::Dead) {
            let _ = reply.send(JoinResult::error("", Error::CoordinatorNotAvailable));
            return Vec::new();
        }
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            let _ = reply.send(JoinResult::error("", Error::InconsistentGroupProtocol));
            return Vec::new();
        }
        let existing_static = req
            .group_instance_id
            .as_deref()
            .and_then(|i| g.static_member_id(i))
            .map(str::to_string);
        let new_id = self.generate_member_id(&req.client_id, req.group_instance_id.as_deref());
        match (&req.group_instance_id, existing_static) {
            (Some(_), Some(old_id)) => {
                tracing::info!(group = %req.group_id, instance = ?req.group_instance_id, old = %old_id, new = %new_id, "static member rejoins with an unknown member id; replacing the previous member id");
                self.update_static_member(req, old_id, new_id, reply, now)
            }
            (Some(_), None) => self.add_member_and_rebalance(req, new_id, reply, now),
            (None, _) if req.require_known_member_id => {
                if let Some(g) = self.groups.get_mut(&req.group_id) {
                    g.add_pending_member(&new_id);
                }
                self.reschedule_heartbeat(
                    &req.group_id,
                    &new_id,
                    req.session_timeout_ms as i64,
                    now,
                );
                let _ = reply.send(JoinResult::error(&new_id, Error::MemberIdRequired));
                Vec::new()
            }
            (None, _) => self.add_member_and_rebalance(req, new_id, reply, now),
        }
    }

    fn join_existing_member(
        &mut self,
        req: JoinRequest,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        let gid = req.group_id.clone();
        let mid = req.member_id.clone();
        let Some(g) = self.groups.get(&gid) else {
            return Vec::new();
        };
        if g.is(GroupState::Dead) {
            let _ = reply.send(JoinResult::error(&mid, Error::CoordinatorNotAvailable));
            return Vec::new();
        }
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            let _ = reply.send(JoinResult::error(&mid, Error::InconsistentGroupProtocol));
            return Vec::new();
        }
        if g.is_pending_member(&mid) {
            if req.group_instance_id.is_some() {
                // A pending member id was handed out to a dynamic member only.
                let _ = reply.send(JoinResult::error(&mid, Error::InvalidRequest));
                return Vec::new();
            }
            return self.add_member_and_rebalance(req, mid, reply, now);
        }
        if let Err(e) = g.validate_member(&mid, req.group_instance_id.as_deref()) {
            let _ = reply.send(JoinResult::error(&mid, e));
            return Vec::new();
        }
        let matches = g.member(&mid).is_some_and(|m| m.matches(&req.protocols));
        let reason = req.reason.clone().unwrap_or_else(|| "not provided".into());
        match g.state() {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(req, reply, &format!("member {mid} joining group during PreparingRebalance; client reason: {reason}"), now)
            }
            GroupState::CompletingRebalance if matches => {
                // The member lost its JoinGroup answer: send the current generation again.
                let _ = reply.send(current_generation_answer(g, &mid, g.is_leader(&mid)));
                Vec::new()
            }
            GroupState::CompletingRebalance => self.update_member_and_rebalance(
                req,
                reply,
                &format!("updating metadata for member {mid} during CompletingRebalance; client reason: {reason}"),
                now,
            ),
            GroupState::Stable if g.is_leader(&mid) => self.update_member_and_rebalance(
                req,
                reply,
                &format!("leader {mid} re-joining group during Stable; client reason: {reason}"),
                now,
            ),
            GroupState::Stable if !matches => self.update_member_and_rebalance(
                req,
                reply,
                &format!("updating metadata for member {mid} during Stable; client reason: {reason}"),
                now,
            ),
            GroupState::Stable => {
                let _ = reply.send(current_generation_answer(g, &mid, false));
                Vec::new()
            }
            GroupState::Empty | GroupState::Dead => {
                tracing::warn!(group = %gid, member = %mid, state = ?g.state(), "rejoining member in an unexpected group state");
                let _ = reply.send(JoinResult::error(&mid, Error::UnknownMemberId));
                Vec::new()
            }
        }
    }

    fn update_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        reply: Reply<JoinResult>,
        reason: &str,
        now: i64,
    ) -> Vec<Append> {
        if let Some(g) = self.groups.get_mut(&req.group_id) {
            g.update_member(
                &req.member_id,
                req.protocols,
                req.rebalance_timeout_ms,
                req.session_timeout_ms,
                Some(reply),
            );
        }
        self.maybe_prepare_rebalance_or_complete_join(&req.group_id, reason, now)
    }

    fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        member_id: String,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        let gid = req.group_id.clone();
        let Some(g) = self.groups.get_mut(&gid) else {
            return Vec::new();
        };
        if g.is(GroupState::PreparingRebalance) && g.previous_state() == GroupState::Empty {
            g.new_member_added = true;
        }
        let reason = format!(
            "adding new member {member_id} with group instance id {:?}; client reason: {}",
            req.group_instance_id,
            req.reason.as_deref().unwrap_or("not provided")
        );
        g.add(Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(reply),
            awaiting_sync: None,
            is_new: true,
        });
        // A new member cannot heartbeat before its join completes; bound the wait instead.
        let timeout = self.config.new_member_join_timeout_ms;
        self.reschedule_heartbeat(&gid, &member_id, timeout, now);
        self.maybe_prepare_rebalance_or_complete_join(&gid, &reason, now)
    }

    /// A known static member (by group.instance.id) rejoined with an unknown member id.
    fn update_static_member(
        &mut self,
        req: JoinRequest,
        old_id: String,
        new_id: String,
        reply: Reply<JoinResult>,
        now: i64,
    ) -> Vec<Append> {
        let gid = req.group_id.clone();
        let Some(instance) = req.group_instance_id.clone() else {
            return Vec::new();
        };
        let Some(g) = self.groups.get_mut(&gid) else {
            return Vec::new();
        };
        let old_leader = g.leader_id().unwrap_or_default().to_string();
        g.replace_static_member(&instance, &old_id, &new_id);
        let (old_protocols, old_rebalance, old_session) = match g.member(&new_id) {
            Some(m) => (
                m.protocols.clone(),
                m.rebalance_timeout_ms,
                m.session_timeout_ms,
            ),
            None => return Vec::new(),
        };
        g.update_member(
            &new_id,
            req.protocols.clone(),
            req.rebalance_timeout_ms,
            req.session_timeout_ms,
            Some(reply),
        );
        let state = g.state();
        self.reschedule_member_session(&gid, &new_id, now);
        let reason = format!(
            "static member {new_id} with instance id {instance} rejoined; client reason: {}",
            req.reason.as_deref().unwrap_or("not provided")
        );
        match state {
            GroupState::Stable => {
                let Some(g) = self.groups.get(&gid) else {
                    return Vec::new();
                };
                if g.select_protocol() != g.protocol_name {
                    return self.maybe_prepare_rebalance_or_complete_join(&gid, &reason, now);
                }
                tracing::info!(group = %gid, member = %new_id, "static member rejoined during Stable without changing the selected protocol: no rebalance");
                let assignment = g.assignments();
                let record = records::group_metadata_value(&g.to_record(&assignment, now));
                let skip = req.supports_skip_assignment;
                vec![Append::new(
                    vec![Record {
                        key: records::group_metadata_key(&gid),
                        value: Some(record),
                    }],
                    move |shard, result, now| {
                        let Some(g) = shard.groups.get_mut(&gid) else {
                            return Vec::new();
                        };
                        match result {
                            Err(e) => {
                                tracing::warn!(group = %gid, member = %new_id, error = ?e, "cannot persist the static member's new id; reverting to the old one");
                                let reply = g.take_join_reply(&new_id);
                                g.update_member(
                                    &new_id,
                                    old_protocols,
                                    old_rebalance,
                                    old_session,
                                    None,
                                );
                                g.replace_static_member(&instance, &new_id, &old_id);
                                if let Some(reply) = reply {
                                    let mut r = JoinResult::error("", coordinator_error(e));
                                    r.generation_id = g.generation_id;
                                    r.protocol_type = g.protocol_type.clone();
                                    r.protocol_name = g.protocol_name.clone();
                                    r.leader_id = old_leader;
                                    let _ = reply.send(r);
                                }
                                shard.reschedule_member_session(&gid, &old_id, now);
                            }
                            Ok(_) if skip => {
                                let is_leader = g.is_leader(&new_id);
                                let mut r = current_generation_answer(g, &new_id, is_leader);
                                r.skip_assignment = is_leader;
                                g.complete_join(&new_id, r);
                            }
                            Ok(_) => {
                                // Before JoinGroup v9 the old leader id is returned so the
                                // rejoining member does not run a pointless assignment.
                                let mut r = current_generation_answer(g, &new_id, false);
                                r.leader_id = old_leader;
                                g.complete_join(&new_id, r);
                            }
                        }
                        Vec::new()
                    },
                )]
            }
            GroupState::CompletingRebalance => self.prepare_rebalance(&gid, &reason, now),
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(&gid, now),
            GroupState::Empty | GroupState::Dead => {
                tracing::error!(group = %gid, state = ?state, "static member rejoined a group without members");
                Vec::new()
            }
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        gid: &str,
        reason: &str,
        now: i64,
    ) -> Vec<Append> {
        match self.groups.get(gid) {
            Some(g) if g.can_rebalance() => self.prepare_rebalance(gid, reason, now),
            Some(_) => self.maybe_complete_join_phase(gid, now),
            None => Vec::new(),
        }
    }

    fn maybe_complete_join_phase(&mut self, gid: &str, now: i64) -> Vec<Append> {
        match self.groups.get(gid) {
            Some(g)
                if g.is(GroupState::PreparingRebalance)
                    && g.has_all_members_joined()
                    && g.previous_state() != GroupState::Empty =>
            {
                self.complete_join(gid, now)
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn prepare_rebalance(&mut self, gid: &str, reason: &str, now: i64) -> Vec<Append> {
        if self
            .groups
            .get(gid)
            .is_some_and(|g| g.is(GroupState::CompletingRebalance))
        {
            self.reset_and_propagate_assignment_error(gid, Error::RebalanceInProgress, now);
        }
        self.remove_sync_expiration(gid);
        let delay = self.config.initial_rebalance_delay_ms;
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        let initial = g.is(GroupState::Empty);
        let remaining = (g.rebalance_timeout_ms() - delay).max(0);
        g.transition_to(GroupState::PreparingRebalance, now);
        tracing::info!(group = %gid, generation = g.generation_id, members = g.size(), %reason, "preparing to rebalance group");
        if initial {
            self.timer.schedule(
                TimerKey::Join(gid.to_string()),
                now + delay,
                TimerTask::InitialJoin { delay, remaining },
            );
            Vec::new()
        } else {
            self.maybe_complete_join_else_schedule(gid, now)
        }
    }

    fn maybe_complete_join_else_schedule(&mut self, gid: &str, now: i64) -> Vec<Append> {
        let Some(g) = self.groups.get(gid) else {
            return Vec::new();
        };
        if g.has_all_members_joined() {
            self.complete_join(gid, now)
        } else {
            let timeout = g.rebalance_timeout_ms();
            self.timer.schedule(
                TimerKey::Join(gid.to_string()),
                now + timeout,
                TimerTask::CompleteJoin,
            );
            Vec::new()
        }
    }

    pub(super) fn initial_join_expired(
        &mut self,
        gid: &str,
        delay: i64,
        remaining: i64,
        now: i64,
    ) -> Vec<Append> {
        let configured = self.config.initial_rebalance_delay_ms;
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        if g.new_member_added && remaining != 0 {
            // Members are still arriving: wait a little longer, up to the rebalance timeout.
            g.new_member_added = false;
            let new_delay = configured.min(remaining);
            let new_remaining = (remaining - delay).max(0);
            self.timer.schedule(
                TimerKey::Join(gid.to_string()),
                now + new_delay,
                TimerTask::InitialJoin {
                    delay: new_delay,
                    remaining: new_remaining,
                },
            );
            Vec::new()
        } else {
            self.complete_join(gid, now)
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, a new generation
    /// starts, and every parked JoinGroup gets its answer (the leader with all members).
    pub(super) fn complete_join(&mut self, gid: &str, now: i64) -> Vec<Append> {
        self.timer.cancel(&TimerKey::Join(gid.to_string()));
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        let gone = g.not_yet_rejoined_dynamic_members();
        for m in &gone {
            g.remove(m);
        }
        if !gone.is_empty() {
            tracing::info!(group = %gid, members = ?gone, "removed dynamic members that did not rejoin");
        }
        for m in &gone {
            self.cancel_heartbeat(gid, m);
        }
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        if g.is(GroupState::Dead) {
            return Vec::new();
        }
        if !g.maybe_elect_new_joined_leader() && g.size() > 0 {
            // Nobody rejoined: wait another rebalance timeout for the sessions to expire.
            tracing::error!(group = %gid, "group could not complete rebalance because no members rejoined");
            let timeout = g.rebalance_timeout_ms();
            self.timer.schedule(
                TimerKey::Join(gid.to_string()),
                now + timeout,
                TimerTask::CompleteJoin,
            );
            return Vec::new();
        }
        g.init_next_generation(now);
        if g.is(GroupState::Empty) {
            tracing::info!(group = %gid, generation = g.generation_id, "group is now empty");
            let record = records::group_metadata_value(&g.to_record(&HashMap::new(), now));
            let gid = gid.to_string();
            return vec![Append::new(
                vec![Record {
                    key: records::group_metadata_key(&gid),
                    value: Some(record),
                }],
                move |_, result, _| {
                    if let Err(e) = result {
                        // Harmless: no member depends on it; a reload sees the previous
                        // generation, whose members then time out.
                        tracing::warn!(group = %gid, error = ?e, "cannot write the empty group's metadata");
                    }
                    Vec::new()
                },
            )];
        }
        tracing::info!(group = %gid, generation = g.generation_id, members = g.size(), protocol = ?g.protocol_name, "group rebalanced: join phase complete");
        let generation = g.generation_id;
        let timeout = g.rebalance_timeout_ms();
        let ids = g.member_ids();
        for id in &ids {
            let is_leader = g.is_leader(id);
            let answer = current_generation_answer(g, id, is_leader);
            g.complete_join(id, answer);
            if let Some(m) = g.member_mut(id) {
                m.is_new = false;
            }
            g.add_pending_sync_member(id);
        }
        for id in &ids {
            self.reschedule_member_session(gid, id, now);
        }
        self.timer.schedule(
            TimerKey::Sync(gid.to_string()),
            now + timeout,
            TimerTask::ExpireSync { generation },
        );
        Vec::new()
    }

    pub(super) fn expire_heartbeat(&mut self, gid: &str, mid: &str, now: i64) -> Vec<Append> {
        let Some(g) = self.groups.get_mut(gid) else {
            return Vec::new();
        };
        if g.is(GroupState::Dead) {
            return Vec::new();
        }
        if g.is_pending_member(mid) {
            tracing::info!(group = %gid, member = %mid, "pending member removed after its session timeout");
            g.remove(mid);
            return self.maybe_complete_join_if_all_joined(gid, now);
        }
        match g.member(mid) {
            Some(m) if !m.has_satisfied_heartbeat() => {
                tracing::info!(group = %gid, member = %mid, "member session expired; removing it from the group");
                self.remove_member_and_update(
                    gid,
                    mid,
                    &format!("removing member {mid} on heartbeat expiration"),
                    now,
                )
            }
            _ => Vec::new(),
        }
    }

    fn maybe_complete_join_if_all_joined(&mut self, gid: &str, now: i64) -> Vec<Append> {
        match self.groups.get(gid) {
            Some(g) if g.is(GroupState::PreparingRebalance) && g.has_all_members_joined() => {
                self.complete_join(gid, now)
            }
            _ => Vec::new(),
        }
    }

    /// Removes a member (session expiry, LeaveGroup) and moves the group on.
    fn remove_member_and_update(
        &mut self,
        gid: &str,
        mid: &str,
        reason: &str,
        now: i64,
    ) -> Vec<Append> {
        self.remove_member(gid, mid);
        match self.groups.get(gid).map(ClassicGroup::state) {
            Some(GroupState::Stable) | Some(GroupState::CompletingRebalance) => {
                self.maybe_prepare_rebalance_or_complete_join(gid, reason, now)
            }
            Some(GroupState::PreparingRebalance) => {
                self.maybe_complete_join_if_all_joined(gid, now)
            }
            _ => Vec::new(),
        }
    }

    /// Drops a member, answering its parked requests with UNKNOWN_MEMBER_ID so a live
    /// client rejoins.
    fn remove_member(&mut self, gid: &str, mid: &str) {
        self.cancel_heartbeat(gid, mid);
        if let Some(g) = self.groups.get_mut(gid) {
            g.complete_join(mid, JoinResult::error("", Error::UnknownMemberId));
            g.complete_sync(mid, SyncResult::error(Error::UnknownMemberId));
            g.remove(mid);
        }
    }

    // ------------------------------------------------------------------ SyncGroup

    pub fn sync_group(
        &mut self,
        req: SyncRequest,
        reply: Reply<SyncResult>,
        now: i64,
    ) -> Vec<Append> {
        if req.group_id.is_empty() {
            let _ = reply.send(SyncResult::error(Error::InvalidGroupId));
            return Vec::new();
        }
        let gid = req.group_id.clone();
        let mid = req.member_id.clone();
        let Some(g) = self.groups.get_mut(&gid) else {
            let _ = reply.send(SyncResult::error(Error::UnknownMemberId));
            return Vec::new();
        };
        if g.is(GroupState::Empty) {
            let _ = reply.send(SyncResult::error(Error::UnknownMemberId));
            return Vec::new();
        }
        let invalid = if g.is(GroupState::Dead) {
            Some(Error::CoordinatorNotAvailable)
        } else if let Err(e) = g.validate_member(&mid, req.group_instance_id.as_deref()) {
            Some(e)
        } else if req.generation_id != g.generation_id {
            Some(Error::IllegalGeneration)
        } else if inconsistent(&req.protocol_type, &g.protocol_type)
            || inconsistent(&req.protocol_name, &g.protocol_name)
        {
            Some(Error::InconsistentGroupProtocol)
        } else {
            None
        };
        if let Some(e) = invalid {
            let _ = reply.send(SyncResult::error(e));
            return Vec::new();
        }
        match g.state() {
            GroupState::PreparingRebalance => {
                let _ = reply.send(SyncResult::error(Error::RebalanceInProgress));
                Vec::new()
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = g.member_mut(&mid) {
                    if let Some(old) = m.awaiting_sync.replace(reply) {
                        let _ = old.send(SyncResult::error(Error::RebalanceInProgress));
                    }
                }
                self.remove_pending_sync_member(&gid, &mid);
                let Some(g) = self.groups.get(&gid) else {
                    return Vec::new();
                };
                if !g.is_leader(&mid) {
                    return Vec::new();
                }
                tracing::info!(group = %gid, leader = %mid, generation = g.generation_id, members = g.size(), static_members = g.static_member_count(), "assignment received from the group leader");
                let mut assignment: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                for id in g.member_ids() {
                    assignment.entry(id).or_default();
                }
                // Assignments for ids that are not members are not stored (Kafka writes
                // only the members' entries).
                let record = records::group_metadata_value(&g.to_record(&assignment, now));
                let generation = g.generation_id;
                vec![Append::new(
                    vec![Record {
                        key: records::group_metadata_key(&gid),
                        value: Some(record),
                    }],
                    move |shard, result, now| {
                        let current = shard.groups.get(&gid).is_some_and(|g| {
                            g.is(GroupState::CompletingRebalance) && g.generation_id == generation
                        });
                        if !current {
                            return Vec::new();
                        }
                        match result {
                            Err(e) => {
                                let e = coordinator_error(e);
                                shard.reset_and_propagate_assignment_error(&gid, e, now);
                                shard.maybe_prepare_rebalance_or_complete_join(
                                    &gid,
                                    &format!("error {e:?} when storing group assignment during SyncGroup (member {mid})"),
                                    now,
                                )
                            }
                            Ok(_) => {
                                if let Some(g) = shard.groups.get_mut(&gid) {
                                    for id in g.member_ids() {
                                        let a = assignment.get(&id).cloned().unwrap_or_default();
                                        g.set_assignment(&id, a);
                                    }
                                }
                                shard.propagate_assignment(&gid, None, now);
                                if let Some(g) = shard.groups.get_mut(&gid) {
                                    g.transition_to(GroupState::Stable, now);
                                    tracing::info!(group = %gid, generation, "group is stable");
                                }
                                Vec::new()
                            }
                        }
                    },
                )]
            }
            GroupState::Stable => {
                let answer = SyncResult {
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: g
                        .member(&mid)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default(),
                    error: None,
                };
                self.remove_pending_sync_member(&gid, &mid);
                let _ = reply.send(answer);
                Vec::new()
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = reply.send(SyncResult::error(Error::UnknownMemberId));
                Vec::new()
            }
        }
    }

    fn remove_pending_sync_member(&mut self, gid: &str, mid: &str) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        g.remove_pending_sync_member(mid);
        let cancel = match g.state() {
            GroupState::CompletingRebalance | GroupState::Stable => {
                g.has_received_sync_from_all_members()
            }
            _ => true,
        };
        if cancel {
            self.timer.cancel(&TimerKey::Sync(gid.to_string()));
        }
    }

    fn remove_sync_expiration(&mut self, gid: &str) {
        if let Some(g) = self.groups.get_mut(gid) {
            g.clear_pending_sync_members();
        }
        self.timer.cancel(&TimerKey::Sync(gid.to_string()));
    }

    pub(super) fn expire_pending_sync(
        &mut self,
        gid: &str,
        generation: i32,
        now: i64,
    ) -> Vec<Append> {
        let Some(g) = self.groups.get(gid) else {
            return Vec::new();
        };
        if g.generation_id != generation
            || !matches!(
                g.state(),
                GroupState::CompletingRebalance | GroupState::Stable
            )
            || g.has_received_sync_from_all_members()
        {
            return Vec::new();
        }
        let pending = g.pending_sync_members();
        for m in &pending {
            self.remove_member(gid, m);
        }
        tracing::info!(group = %gid, members = ?pending, "removed members that did not send SyncGroup in time");
        self.prepare_rebalance(
            gid,
            &format!("removing {pending:?} on pending sync request expiration"),
            now,
        )
    }

    fn reset_and_propagate_assignment_error(&mut self, gid: &str, error: Error, now: i64) {
        if let Some(g) = self.groups.get_mut(gid) {
            debug_assert!(g.is(GroupState::CompletingRebalance));
            for id in g.member_ids() {
                g.set_assignment(&id, Bytes::new());
            }
        }
        self.propagate_assignment(gid, Some(error), now);
    }

    /// Answers every parked SyncGroup with the member's assignment (or `error`).
    fn propagate_assignment(&mut self, gid: &str, error: Option<Error>, now: i64) {
        let Some(g) = self.groups.get_mut(gid) else {
            return;
        };
        let (ptype, pname) = match error {
            None => (g.protocol_type.clone(), g.protocol_name.clone()),
            Some(_) => (None, None),
        };
        let mut answered = Vec::new();
        for id in g.member_ids() {
            let assignment = g
                .member(&id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default();
            let result = SyncResult {
                protocol_type: ptype.clone(),
                protocol_name: pname.clone(),
                assignment,
                error,
            };
            if g.complete_sync(&id, result) {
                answered.push(id);
            }
        }
        // The session restarts once the member has its answer.
        for id in answered {
            self.reschedule_member_session(gid, &id, now);
        }
    }

    // ------------------------------------------------------------------ Heartbeat

    pub fn heartbeat(&mut self, req: HeartbeatRequest, now: i64) -> Option<Error> {
        if req.group_id.is_empty() {
            return Some(Error::InvalidGroupId);
        }
        let Some(g) = self.groups.get(&req.group_id) else {
            return Some(Error::UnknownMemberId);
        };
        if g.is(GroupState::Dead) {
            return Some(Error::CoordinatorNotAvailable);
        }
        if let Err(e) = g.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
            return Some(e);
        }
        if req.generation_id != g.generation_id {
            return Some(Error::IllegalGeneration);
        }
        match g.state() {
            GroupState::Empty | GroupState::Dead => Some(Error::UnknownMemberId),
            GroupState::PreparingRebalance => {
                self.reschedule_member_session(&req.group_id, &req.member_id, now);
                Some(Error::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.reschedule_member_session(&req.group_id, &req.member_id, now);
                None
            }
        }
    }

    // ------------------------------------------------------------------ LeaveGroup

    pub fn leave_group(
        &mut self,
        group_id: &str,
        members: Vec<LeaveMember>,
        now: i64,
    ) -> (LeaveResult, Vec<Append>) {
        let unknown_all = |members: &[LeaveMember]| LeaveResult {
            error: None,
            members: members
                .iter()
                .map(|m| {
                    (
                        m.member_id.clone(),
                        m.group_instance_id.clone(),
                        Some(Error::UnknownMemberId),
                    )
                })
                .collect(),
        };
        if group_id.is_empty() {
            return (
                LeaveResult {
                    error: Some(Error::InvalidGroupId),
                    members: Vec::new(),
                },
                Vec::new(),
            );
        }
        let Some(g) = self.groups.get(group_id) else {
            return (unknown_all(&members), Vec::new());
        };
        if g.is(GroupState::Dead) {
            return (
                LeaveResult {
                    error: Some(Error::CoordinatorNotAvailable),
                    members: Vec::new(),
                },
                Vec::new(),
            );
        }
        let mut results = Vec::with_capacity(members.len());
        let mut left = Vec::new();
        for m in &members {
            let reason = m.reason.as_deref().unwrap_or("not provided");
            let outcome = match self.groups.get(group_id) {
                None => Some(Error::UnknownMemberId),
                Some(g) if m.member_id.is_empty() => {
                    // Administrative removal by group.instance.id.
                    match m
                        .group_instance_id
                        .as_deref()
                        .and_then(|i| g.static_member_id(i))
                    {
                        Some(id) => {
                            let id = id.to_string();
                            tracing::info!(group = %group_id, member = %id, %reason, "static member removed by LeaveGroup");
                            self.remove_member(group_id, &id);
                            left.push(id);
                            None
                        }
                        None => Some(Error::UnknownMemberId),
                    }
                }
                Some(g) if g.is_pending_member(&m.member_id) => {
                    if let Some(g) = self.groups.get_mut(group_id) {
                        g.remove(&m.member_id);
                    }
                    self.cancel_heartbeat(group_id, &m.member_id);
                    left.push(m.member_id.clone());
                    None
                }
                Some(g) => match g.validate_member(&m.member_id, m.group_instance_id.as_deref()) {
                    Ok(()) => {
                        tracing::info!(group = %group_id, member = %m.member_id, %reason, "member left the group");
                        self.remove_member(group_id, &m.member_id);
                        left.push(m.member_id.clone());
                        None
                    }
                    Err(e) => Some(e),
                },
            };
            results.push((m.member_id.clone(), m.group_instance_id.clone(), outcome));
        }
        let mut appends = Vec::new();
        if !left.is_empty() {
            let reason = format!("explicit LeaveGroup request for {left:?}");
            appends = match self.groups.get(group_id).map(ClassicGroup::state) {
                Some(GroupState::Stable) | Some(GroupState::CompletingRebalance) => {
                    self.maybe_prepare_rebalance_or_complete_join(group_id, &reason, now)
                }
                Some(GroupState::PreparingRebalance) => {
                    self.maybe_complete_join_phase(group_id, now)
                }
                _ => Vec::new(),
            };
        }
        (
            LeaveResult {
                error: None,
                members: results,
            },
            appends,
        )
    }
}

fn inconsistent(requested: &Option<String>, current: &Option<String>) -> bool {
    requested
        .as_ref()
        .is_some_and(|r| Some(r) != current.as_ref())
}

/// The JoinGroup answer describing the group's current generation.
fn current_generation_answer(g: &ClassicGroup, member_id: &str, with_members: bool) -> JoinResult {
    JoinResult {
        members: if with_members {
            g.current_join_members()
        } else {
            Vec::new()
        },
        member_id: member_id.to_string(),
        generation_id: g.generation_id,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        leader_id: g.leader_id().unwrap_or_default().to_string(),
        skip_assignment: false,
        error: None,
    }
}
