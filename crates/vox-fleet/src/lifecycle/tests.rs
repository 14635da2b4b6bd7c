use super::*;

fn ep() -> Endpoint {
    Endpoint {
        host: "203.0.113.7".to_owned(),
        port: 41234,
    }
}

fn seen(actual: ActualStatus, endpoint: Option<Endpoint>) -> LifecycleEvent {
    LifecycleEvent::Observed(Observation {
        intends_running: !matches!(actual, ActualStatus::Exited | ActualStatus::Stopped),
        actual,
        endpoint,
        failed: false,
    })
}

fn policy() -> LifecyclePolicy {
    LifecyclePolicy {
        queued_deadline: Duration::from_secs(60),
        boot_deadline: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(300),
    }
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

#[test]
fn stopped_wanted_starts() {
    let t0 = Instant::now();
    let t = step(
        &LifecycleState::Stopped,
        &LifecycleEvent::Wanted,
        t0,
        &policy(),
    );
    assert_eq!(t.state, LifecycleState::Starting { since: t0 });
    assert_eq!(t.actions, vec![Action::Start]);
}

#[test]
fn start_accepted_polls_and_queued_start_waits() {
    let t0 = Instant::now();
    let starting = LifecycleState::Starting { since: t0 };
    let t = step(
        &starting,
        &LifecycleEvent::StartAnswered(StartOutcome::Accepted),
        t0,
        &policy(),
    );
    assert_eq!((t.state, t.actions), (starting.clone(), vec![Action::Poll]));
    let t1 = secs(t0, 1);
    let t = step(
        &starting,
        &LifecycleEvent::StartAnswered(StartOutcome::Queued),
        t1,
        &policy(),
    );
    assert_eq!(
        t.state,
        LifecycleState::Queued {
            since: t1,
            start_since: t0
        }
    );
    assert_eq!(t.actions, vec![Action::Poll]);
}

#[test]
fn starting_tolerates_exited_then_runs_without_ports() {
    let t0 = Instant::now();
    let starting = LifecycleState::Starting { since: t0 };
    let t = step(&starting, &seen(ActualStatus::Exited, None), t0, &policy());
    assert_eq!((t.state, t.actions), (starting.clone(), vec![Action::Poll]));
    let t = step(&starting, &seen(ActualStatus::Loading, None), t0, &policy());
    assert_eq!((t.state, t.actions), (starting.clone(), vec![Action::Poll]));
    let t = step(
        &starting,
        &seen(ActualStatus::Running, None),
        secs(t0, 5),
        &policy(),
    );
    assert_eq!(t.state, LifecycleState::Running { start_since: t0 });
    assert_eq!(t.actions, vec![Action::Poll]);
}

#[test]
fn starting_running_with_ports_checks_health() {
    let t0 = Instant::now();
    let t = step(
        &LifecycleState::Starting { since: t0 },
        &seen(ActualStatus::Running, Some(ep())),
        t0,
        &policy(),
    );
    assert_eq!(t.state, LifecycleState::Running { start_since: t0 });
    assert_eq!(t.actions, vec![Action::CheckHealth(ep())]);
}

#[test]
fn running_ports_appear_then_health_decides() {
    let t0 = Instant::now();
    let running = LifecycleState::Running { start_since: t0 };
    let t = step(&running, &seen(ActualStatus::Running, None), t0, &policy());
    assert_eq!((t.state, t.actions), (running.clone(), vec![Action::Poll]));
    let t = step(
        &running,
        &seen(ActualStatus::Running, Some(ep())),
        t0,
        &policy(),
    );
    assert_eq!(
        (t.state, t.actions),
        (running.clone(), vec![Action::CheckHealth(ep())])
    );
    let bad = LifecycleEvent::Health {
        endpoint: ep(),
        ok: false,
    };
    let t = step(&running, &bad, t0, &policy());
    assert_eq!((t.state, t.actions), (running.clone(), vec![Action::Poll]));
    let t1 = secs(t0, 30);
    let good = LifecycleEvent::Health {
        endpoint: ep(),
        ok: true,
    };
    let t = step(&running, &good, t1, &policy());
    assert_eq!(
        t.state,
        LifecycleState::Idle {
            endpoint: ep(),
            since: t1
        }
    );
    assert_eq!(t.actions, vec![Action::Serve(ep())]);
}

#[test]
fn running_container_that_exits_falls_back() {
    let t0 = Instant::now();
    let t = step(
        &LifecycleState::Running { start_since: t0 },
        &seen(ActualStatus::Exited, None),
        t0,
        &policy(),
    );
    assert_eq!(
        t.state,
        LifecycleState::Stopping {
            reason: StopReason::FallBack
        }
    );
    assert!(matches!(
        t.actions.as_slice(),
        [Action::Stop, Action::FallBack(_)]
    ));
}

#[test]
fn host_lost_or_error_message_while_starting_falls_back() {
    let t0 = Instant::now();
    for state in [
        LifecycleState::Starting { since: t0 },
        LifecycleState::Queued {
            since: t0,
            start_since: t0,
        },
    ] {
        let t = step(&state, &seen(ActualStatus::Offline, None), t0, &policy());
        assert_eq!(
            t.state,
            LifecycleState::Stopping {
                reason: StopReason::FallBack
            },
            "{state:?}"
        );
        let failed = LifecycleEvent::Observed(Observation {
            actual: ActualStatus::Created,
            intends_running: true,
            endpoint: None,
            failed: true,
        });
        let t = step(&state, &failed, t0, &policy());
        assert!(
            matches!(t.actions.as_slice(), [Action::Stop, Action::FallBack(_)]),
            "{state:?}"
        );
    }
}

#[test]
fn queued_start_proceeds_when_the_gpu_frees() {
    let t0 = Instant::now();
    let queued = LifecycleState::Queued {
        since: secs(t0, 1),
        start_since: t0,
    };
    let t = step(
        &queued,
        &seen(ActualStatus::Exited, None),
        secs(t0, 10),
        &policy(),
    );
    assert_eq!((t.state, t.actions), (queued.clone(), vec![Action::Poll]));
    let t = step(
        &queued,
        &seen(ActualStatus::Loading, None),
        secs(t0, 20),
        &policy(),
    );
    assert_eq!(t.state, LifecycleState::Starting { since: t0 });
    let t = step(
        &queued,
        &seen(ActualStatus::Running, Some(ep())),
        secs(t0, 20),
        &policy(),
    );
    assert_eq!(t.state, LifecycleState::Running { start_since: t0 });
}

#[test]
fn start_still_queued_after_deadline_cancels_and_falls_back() {
    let t0 = Instant::now();
    let queued = LifecycleState::Queued {
        since: t0,
        start_since: t0,
    };
    let before = step(&queued, &LifecycleEvent::Tick, secs(t0, 59), &policy());
    assert_eq!((before.state, before.actions), (queued.clone(), vec![]));
    let t = step(&queued, &LifecycleEvent::Tick, secs(t0, 60), &policy());
    assert_eq!(
        t.state,
        LifecycleState::Stopping {
            reason: StopReason::FallBack
        }
    );
    assert_eq!(t.actions.len(), 2);
    assert_eq!(t.actions[0], Action::Stop);
    assert!(matches!(&t.actions[1], Action::FallBack(why) if why.contains("queued")));
}

#[test]
fn boot_deadline_applies_to_starting_and_running() {
    let t0 = Instant::now();
    for state in [
        LifecycleState::Starting { since: t0 },
        LifecycleState::Running { start_since: t0 },
    ] {
        let early = step(&state, &LifecycleEvent::Tick, secs(t0, 599), &policy());
        assert_eq!(early.state, state);
        let late = step(&state, &LifecycleEvent::Tick, secs(t0, 600), &policy());
        assert_eq!(
            late.state,
            LifecycleState::Stopping {
                reason: StopReason::FallBack
            }
        );
    }
}

#[test]
fn requests_move_between_idle_and_ready() {
    let t0 = Instant::now();
    let idle = LifecycleState::Idle {
        endpoint: ep(),
        since: t0,
    };
    let t = step(&idle, &LifecycleEvent::Wanted, t0, &policy());
    assert_eq!(
        (t.state, t.actions),
        (idle.clone(), vec![Action::Serve(ep())])
    );
    let one = step(&idle, &LifecycleEvent::RequestStarted, t0, &policy()).state;
    assert_eq!(
        one,
        LifecycleState::Ready {
            endpoint: ep(),
            in_flight: 1
        }
    );
    let two = step(&one, &LifecycleEvent::RequestStarted, t0, &policy()).state;
    assert_eq!(
        two,
        LifecycleState::Ready {
            endpoint: ep(),
            in_flight: 2
        }
    );
    let back = step(&two, &LifecycleEvent::RequestFinished, t0, &policy()).state;
    assert_eq!(back, one);
    let t5 = secs(t0, 5);
    let done = step(&one, &LifecycleEvent::RequestFinished, t5, &policy()).state;
    assert_eq!(
        done,
        LifecycleState::Idle {
            endpoint: ep(),
            since: t5
        }
    );
    // Busy instances are never idle-stopped.
    let busy = step(&one, &LifecycleEvent::Tick, secs(t0, 10_000), &policy());
    assert_eq!(busy.state, one);
}

#[test]
fn idle_timeout_stops() {
    let t0 = Instant::now();
    let idle = LifecycleState::Idle {
        endpoint: ep(),
        since: t0,
    };
    assert_eq!(
        step(&idle, &LifecycleEvent::Tick, secs(t0, 299), &policy()).state,
        idle
    );
    let t = step(&idle, &LifecycleEvent::Tick, secs(t0, 300), &policy());
    assert_eq!(
        t.state,
        LifecycleState::Stopping {
            reason: StopReason::Rest
        }
    );
    assert_eq!(t.actions, vec![Action::Stop]);
}

#[test]
fn ready_or_idle_instance_stopped_under_us_becomes_stopped() {
    let t0 = Instant::now();
    for state in [
        LifecycleState::Idle {
            endpoint: ep(),
            since: t0,
        },
        LifecycleState::Ready {
            endpoint: ep(),
            in_flight: 1,
        },
    ] {
        let t = step(&state, &seen(ActualStatus::Exited, None), t0, &policy());
        assert_eq!(t.state, LifecycleState::Stopped, "{state:?}");
        let still = step(
            &state,
            &seen(ActualStatus::Running, Some(ep())),
            t0,
            &policy(),
        );
        assert_eq!(still.state, state);
    }
}

#[test]
fn stop_wanted_from_every_active_state() {
    let t0 = Instant::now();
    for state in [
        LifecycleState::Starting { since: t0 },
        LifecycleState::Queued {
            since: t0,
            start_since: t0,
        },
        LifecycleState::Running { start_since: t0 },
        LifecycleState::Ready {
            endpoint: ep(),
            in_flight: 2,
        },
        LifecycleState::Idle {
            endpoint: ep(),
            since: t0,
        },
    ] {
        let t = step(&state, &LifecycleEvent::StopWanted, t0, &policy());
        assert_eq!(
            t.state,
            LifecycleState::Stopping {
                reason: StopReason::Rest
            },
            "{state:?}"
        );
        assert_eq!(t.actions, vec![Action::Stop]);
    }
    for state in [
        LifecycleState::Stopped,
        LifecycleState::Stopping {
            reason: StopReason::Rest,
        },
    ] {
        let t = step(&state, &LifecycleEvent::StopWanted, t0, &policy());
        assert_eq!((t.state, t.actions), (state, vec![]));
    }
}

#[test]
fn stopping_waits_for_exit() {
    let t0 = Instant::now();
    let stopping = LifecycleState::Stopping {
        reason: StopReason::FallBack,
    };
    let running = LifecycleEvent::Observed(Observation {
        actual: ActualStatus::Running,
        intends_running: false,
        endpoint: Some(ep()),
        failed: false,
    });
    let t = step(&stopping, &running, t0, &policy());
    assert_eq!((t.state, t.actions), (stopping.clone(), vec![Action::Poll]));
    let t = step(&stopping, &seen(ActualStatus::Exited, None), t0, &policy());
    assert_eq!((t.state, t.actions), (LifecycleState::Stopped, vec![]));
}

#[test]
fn meaningless_events_change_nothing() {
    let t0 = Instant::now();
    let cases = [
        (LifecycleState::Stopped, LifecycleEvent::RequestFinished),
        (LifecycleState::Stopped, LifecycleEvent::Tick),
        (
            LifecycleState::Starting { since: t0 },
            LifecycleEvent::Wanted,
        ),
        (
            LifecycleState::Stopping {
                reason: StopReason::Rest,
            },
            LifecycleEvent::Wanted,
        ),
        (
            LifecycleState::Idle {
                endpoint: ep(),
                since: t0,
            },
            LifecycleEvent::RequestFinished,
        ),
    ];
    for (state, event) in cases {
        let t = step(&state, &event, secs(t0, 1), &policy());
        assert_eq!((t.state, t.actions), (state, vec![]));
    }
}
