use super::*;

fn created() -> OrderEvent {
    OrderEvent::OrderCreated {
        order_id: "o1".into(),
        user_id: "u1".into(),
        lines: vec![
            Line {
                sku: "SKU-A".into(),
                quantity: 2,
                unit_price_cents: 500,
            },
            Line {
                sku: "SKU-B".into(),
                quantity: 1,
                unit_price_cents: 250,
            },
        ],
        total_cents: 1250,
        currency: "USD".into(),
        created_at: 100,
    }
}

/// Runs inputs through decide + fold, the way the service does, returning the history.
fn run(inputs: &[SagaInput]) -> (Vec<OrderEvent>, Vec<Compensation>) {
    let mut history = vec![created()];
    let mut compensations = vec![];
    for input in inputs {
        let order = Order::fold(&history).expect("folds");
        let decision = decide(&order, input);
        compensations.extend(decision.compensations());
        history.extend(decision.events);
    }
    (history, compensations)
}

fn kinds(history: &[OrderEvent]) -> Vec<&'static str> {
    history.iter().map(OrderEvent::kind).collect()
}

#[test]
fn happy_path_confirms() {
    let (history, comp) = run(&[
        SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
        SagaInput::PaymentSucceeded {
            charge_id: "ch1".into(),
        },
    ]);
    assert_eq!(
        kinds(&history),
        [
            "OrderCreated",
            "StockHeld",
            "StockReserved",
            "PaymentSucceeded",
            "OrderConfirmed"
        ]
    );
    assert!(comp.is_empty());
    let order = Order::fold(&history).expect("folds");
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.charge_id.as_deref(), Some("ch1"));
    assert_eq!(order.version, 5);
    assert_eq!(order.total_cents, 1250);
}

#[test]
fn stock_rejected_cancels_without_compensation() {
    let (history, comp) = run(&[SagaInput::StockRejected {
        reason: "SKU-A: 1 available".into(),
    }]);
    assert_eq!(
        kinds(&history),
        ["OrderCreated", "StockRejected", "OrderCancelled"]
    );
    assert!(comp.is_empty());
    let order = Order::fold(&history).expect("folds");
    assert_eq!(order.status(), OrderStatus::Cancelled);
    assert_eq!(
        order.reason.as_deref(),
        Some("out of stock: SKU-A: 1 available")
    );
}

#[test]
fn payment_failure_cancels_so_inventory_releases() {
    let (history, _) = run(&[
        SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
        SagaInput::PaymentFailed {
            reason: "card declined".into(),
        },
    ]);
    assert_eq!(
        kinds(&history),
        [
            "OrderCreated",
            "StockHeld",
            "StockReserved",
            "PaymentFailed",
            "OrderCancelled"
        ]
    );
    let order = Order::fold(&history).expect("folds");
    assert_eq!(order.status(), OrderStatus::Cancelled);
    assert_eq!(
        order.reason.as_deref(),
        Some("payment failed: card declined")
    );
}

#[test]
fn redeliveries_change_nothing() {
    let paid = SagaInput::PaymentSucceeded {
        charge_id: "ch1".into(),
    };
    let once = run(&[
        SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
        paid.clone(),
    ]);
    let twice = run(&[
        SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
        SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
        paid.clone(),
        paid,
        SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
        SagaInput::TimedOut,
        SagaInput::PaymentFailed {
            reason: "late".into(),
        },
    ]);
    assert_eq!(once, twice);
}

#[test]
fn payment_heard_before_stock_is_retried_later() {
    let order = Order::fold(&[created()]).expect("folds");
    let decision = decide(
        &order,
        &SagaInput::PaymentSucceeded {
            charge_id: "ch1".into(),
        },
    );
    assert!(decision.retry_later);
    assert!(decision.events.is_empty());
}

#[test]
fn a_payment_after_a_timeout_is_refunded_once() {
    let paid = SagaInput::PaymentSucceeded {
        charge_id: "ch9".into(),
    };
    let (history, comp) = run(&[
        SagaInput::StockHeld {
            shard: 0,
            shards: 1,
        },
        SagaInput::TimedOut,
        paid.clone(),
        paid,
    ]);
    assert_eq!(
        kinds(&history),
        [
            "OrderCreated",
            "StockHeld",
            "StockReserved",
            "OrderCancelled",
            "PaymentSucceeded",
            "RefundRequested"
        ]
    );
    assert_eq!(
        comp,
        [Compensation::Refund {
            charge_id: "ch9".into(),
            amount_cents: 1250
        }]
    );
    assert_eq!(
        Order::fold(&history).expect("folds").status(),
        OrderStatus::Cancelled
    );
}

#[test]
fn stock_is_reserved_when_every_shard_holds_in_any_order_once() {
    let held = |shard| SagaInput::StockHeld { shard, shards: 3 };
    let (history, _) = run(&[held(2), held(0), held(2), held(1), held(1)]);
    assert_eq!(
        kinds(&history),
        [
            "OrderCreated",
            "StockHeld",
            "StockHeld",
            "StockHeld",
            "StockReserved"
        ]
    );
    let order = Order::fold(&history).expect("folds");
    assert_eq!(order.state, SagaState::AwaitingPayment);
    assert_eq!(order.held, BTreeSet::from([0, 1, 2]));
    assert_eq!(
        history.last(),
        Some(&OrderEvent::StockReserved {
            order_id: "o1".into(),
            total_cents: 1250
        })
    );
}

#[test]
fn one_shard_rejecting_cancels_and_later_holds_change_nothing() {
    let (history, _) = run(&[
        SagaInput::StockHeld {
            shard: 0,
            shards: 2,
        },
        SagaInput::StockRejected {
            reason: "SKU-B: 1 requested, 0 available".into(),
        },
        SagaInput::StockHeld {
            shard: 1,
            shards: 2,
        },
    ]);
    assert_eq!(
        kinds(&history),
        [
            "OrderCreated",
            "StockHeld",
            "StockRejected",
            "OrderCancelled"
        ]
    );
    let order = Order::fold(&history).expect("folds");
    assert_eq!(order.status(), OrderStatus::Cancelled);
    assert!(order.reason.as_deref().is_some_and(|r| r.contains("SKU-B")));
}

#[test]
fn replies_from_two_rings_cancel_and_impossible_replies_are_ignored() {
    let (history, _) = run(&[
        SagaInput::StockHeld {
            shard: 5,
            shards: 4,
        },
        SagaInput::StockHeld {
            shard: 0,
            shards: 0,
        },
        SagaInput::StockHeld {
            shard: 0,
            shards: 2,
        },
        SagaInput::StockHeld {
            shard: 1,
            shards: 4,
        },
    ]);
    assert_eq!(
        kinds(&history),
        ["OrderCreated", "StockHeld", "OrderCancelled"]
    );
    assert!(
        Order::fold(&history)
            .expect("folds")
            .reason
            .is_some_and(|r| r.contains("resharded"))
    );
}

#[test]
fn message_ids_name_the_shard_of_a_hold() {
    let e = OrderEvent::StockHeld(ShardHeld::by_place("o1", 3, 4));
    assert_eq!(e.message_id(), "o1:StockHeld:3");
    let e = OrderEvent::StockHeld(ShardHeld {
        order_id: "o1".into(),
        shard: 3,
        shards: 4,
        skus: Some(vec![]),
        epoch: 2,
        attempt: 1,
    });
    assert_eq!(e.message_id(), "o1:StockHeld:3:2:1");
    let r = OrderEvent::StockRequested {
        order_id: "o1".into(),
        lines: vec![],
        attempt: 2,
    };
    assert_eq!(r.message_id(), "o1:StockRequested:2");
}

fn lines_held(shard: u32, shards: u32, epoch: i64, attempt: u32, skus: &[&str]) -> SagaInput {
    SagaInput::LinesHeld {
        shard,
        shards,
        epoch,
        attempt,
        skus: skus.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn stated_lines_reserve_once_every_line_is_held_whatever_the_ring() {
    // Two shards at one epoch: A on shard 0, B on shard 1.
    let (history, _) = run(&[
        lines_held(1, 2, 1, 0, &["SKU-B"]),
        lines_held(1, 2, 1, 0, &["SKU-B"]),
        lines_held(0, 2, 1, 0, &["SKU-A"]),
    ]);
    assert_eq!(
        kinds(&history),
        ["OrderCreated", "StockHeld", "StockHeld", "StockReserved"],
        "the duplicate is dropped"
    );
    // Across a switch 2 -> 3 where B moves from shard 1 to the new shard 2: shard 2
    // answered before the switch (owning nothing), shard 1 after it (B is gone). The
    // epochs differ and B is not held: ask every shard again.
    let (history, _) = run(&[
        lines_held(0, 2, 1, 0, &["SKU-A"]),
        lines_held(2, 2, 1, 0, &[]),
        lines_held(1, 3, 2, 0, &[]),
    ]);
    assert_eq!(
        kinds(&history),
        [
            "OrderCreated",
            "StockHeld",
            "StockHeld",
            "StockHeld",
            "StockRequested"
        ]
    );
    let order = Order::fold(&history).expect("folds");
    assert_eq!(order.requests, 1);
    assert_eq!(order.status(), OrderStatus::Pending);
    // The answers to the request: shard 2 now owns B and holds it.
    let mut history = history;
    for input in [
        lines_held(0, 3, 2, 1, &["SKU-A"]),
        lines_held(1, 3, 2, 1, &[]),
        lines_held(2, 3, 2, 1, &["SKU-B"]),
    ] {
        let order = Order::fold(&history).expect("folds");
        history.extend(decide(&order, &input).events);
    }
    assert_eq!(
        kinds(&history[5..]),
        ["StockHeld", "StockHeld", "StockHeld", "StockReserved"]
    );
    // An answer to a request that was never made is not recorded.
    let (history, _) = run(&[lines_held(0, 2, 1, 3, &["SKU-A", "SKU-B"])]);
    assert_eq!(kinds(&history), ["OrderCreated"]);
}

#[test]
fn a_stalled_order_asks_again_at_growing_intervals_until_its_lines_are_held() {
    // Shard 0 answered before a switch; the owner of SKU-B was removed before it answered.
    let (history, _) = run(&[lines_held(0, 5, 1, 0, &["SKU-A"])]);
    let at = |secs| SagaInput::Stalled { now: 100 + secs };
    let mut history = history;
    let step = |input: SagaInput, history: &mut Vec<OrderEvent>| {
        let order = Order::fold(history.iter()).expect("folds");
        let d = decide(&order, &input);
        history.extend(d.events.clone());
        d.events.len()
    };
    assert_eq!(step(at(STALL_SECS - 1), &mut history), 0, "not yet");
    assert_eq!(step(at(STALL_SECS), &mut history), 1);
    assert_eq!(kinds(&history).last(), Some(&"StockRequested"));
    assert_eq!(
        step(at(STALL_SECS + 1), &mut history),
        0,
        "waits twice as long"
    );
    // The new owner answers the request: reserved.
    assert_eq!(step(lines_held(2, 3, 2, 1, &["SKU-B"]), &mut history), 2);
    assert_eq!(kinds(&history).last(), Some(&"StockReserved"));
    assert_eq!(
        step(at(1000), &mut history),
        0,
        "nothing once every line is held"
    );
}

#[test]
fn every_shard_of_a_ring_answered_and_a_line_missing_asks_again_then_gives_up() {
    let mut history = vec![created()];
    for attempt in 0..=MAX_STOCK_REQUESTS {
        for shard in 0..2 {
            let order = Order::fold(&history).expect("folds");
            let skus: &[&str] = if shard == 0 { &["SKU-A"] } else { &[] };
            history.extend(decide(&order, &lines_held(shard, 2, 1, attempt, skus)).events);
        }
    }
    let order = Order::fold(&history).expect("folds");
    assert_eq!(order.requests, MAX_STOCK_REQUESTS);
    assert_eq!(order.state, SagaState::Cancelled);
    assert!(
        order
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("could not hold every line")),
        "{:?}",
        order.reason
    );
}

#[test]
fn corrupt_histories_do_not_fold() {
    assert_eq!(Order::fold(&[]), Err(ProjectionError::Empty));
    let confirmed = OrderEvent::OrderConfirmed {
        order_id: "o1".into(),
    };
    assert_eq!(
        Order::fold(std::slice::from_ref(&confirmed)),
        Err(ProjectionError::NotCreatedFirst("OrderConfirmed"))
    );
    // Confirmed without a payment.
    let reserved = OrderEvent::StockReserved {
        order_id: "o1".into(),
        total_cents: 1250,
    };
    assert!(matches!(
        Order::fold(&[created(), reserved.clone(), confirmed]),
        Err(ProjectionError::IllegalTransition { .. })
    ));
    assert!(matches!(
        Order::fold(&[created(), reserved.clone(), reserved]),
        Err(ProjectionError::IllegalTransition { .. })
    ));
    let foreign = OrderEvent::StockReserved {
        order_id: "o2".into(),
        total_cents: 1250,
    };
    assert!(matches!(
        Order::fold(&[created(), foreign]),
        Err(ProjectionError::ForeignEvent { .. })
    ));
}

#[test]
fn events_serialize_with_a_type_tag_and_stable_message_ids() {
    let e = OrderEvent::StockRejected {
        order_id: "o1".into(),
        reason: "none left".into(),
    };
    let json = serde_json::to_value(&e).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"type": "StockRejected", "orderId": "o1", "reason": "none left"})
    );
    assert_eq!(
        serde_json::from_value::<OrderEvent>(json).expect("parses"),
        e
    );
    assert_eq!(e.message_id(), "o1:StockRejected");
    let back: OrderEvent =
        serde_json::from_str(&serde_json::to_string(&created()).expect("serializes"))
            .expect("parses");
    assert_eq!(back, created());
}
