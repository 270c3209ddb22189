//! A sale's windows: one-off boundaries, overlapping sales, deletion mid-sale, recurring cycles.

use super::*;

#[tokio::test]
async fn one_off_sale_prewarms_opens_limits_at_start_and_restores_exactly() {
    let (_client, ns) = setup("sale").await;
    let before = read(&ns).await;
    assert_eq!(
        (before.gateway_min, before.gateway_rpm, before.orders_rpm),
        (1, 5000, 1000)
    );
    let start = at_second(Timestamp::now(), 30);
    let end = start + SignedDuration::from_secs(45);
    let warm = start - SignedDuration::from_secs(10);
    let sales: Api<FlashSale> = ns.api();
    sales
        .create(
            &PostParams::default(),
            &sale_yaml(
                "bf",
                &format!("  start: \"{start}\"\n  end: \"{end}\"\n  prewarm: 10s\n"),
                "    gateway: {scale: {minReplicas: 2, maxReplicas: 5}, rateLimit: {requestsPerMinute: 20000, burst: 2000}}\n    orders: {factor: 2, rateLimit: {requestsPerMinute: 3000}}\n",
            ),
        )
        .await
        .unwrap();
    wait_phase(&sales, "bf", SalePhase::Scheduled, Duration::from_secs(10)).await;
    let s = sales.get("bf").await.unwrap().status.unwrap();
    assert_eq!(s.next_transition_time.map(|t| t.0), Some(warm));
    assert!(
        s.plan.as_ref().is_some_and(|p| p.fits),
        "preflight: {:?}",
        s.plan
    );
    assert_eq!(s.services["orders"].planned_replicas, 2);

    // Capacity first: floors rise at start − prewarm; limits are still the spec's.
    let up = when(&ns, "capacity up", Duration::from_secs(60), |c| {
        c.gateway_min == 2 && c.orders_replicas == 2
    })
    .await;
    boundary("capacity-up", warm, up);
    let c = read(&ns).await;
    assert_eq!(
        (c.gateway_max, c.gateway_rpm, c.orders_rpm),
        (5, 5000, 1000)
    );
    // The raised capacity becomes Ready (the HPA scales the gateway, orders rolls out).
    let deploys: Api<Deployment> = ns.api();
    let ready_at = wait_for("raised capacity Ready", Duration::from_secs(90), || async {
        let ok = |d: Deployment, n: i32| d.status.and_then(|s| s.ready_replicas).unwrap_or(0) >= n;
        let g = deploys.get("shop-gateway").await?;
        let o = deploys.get("shop-orders").await?;
        Ok((ok(g, 2) && ok(o, 2)).then(Timestamp::now))
    })
    .await
    .unwrap();
    println!(
        "figure: prewarm-to-capacity-ready_ms={}",
        ready_at.duration_since(warm).as_millis()
    );
    // Limits open at the start, or when the capacity is Ready if that is later.
    let open = when(&ns, "limits open", Duration::from_secs(90), |c| {
        c.gateway_rpm == 20000 && c.orders_rpm == 3000
    })
    .await;
    let opens_at = start.max(ready_at);
    if ready_at > start {
        println!(
            "figure: capacity-late_ms={}",
            ready_at.duration_since(start).as_millis()
        );
        // Sampling saw readiness up to 100 ms late; the gate saw it first.
        boundary(
            "limits-open(capacity-late)",
            opens_at - SignedDuration::from_millis(200),
            open,
        );
    } else {
        boundary("limits-open", start, open);
    }
    wait_phase(&sales, "bf", SalePhase::Active, Duration::from_secs(5)).await;
    // Events explain the decisions, on the Storefront and on the sale.
    for (kind, reason, words) in [
        (
            "Storefront",
            "RateLimit",
            "gateway: 20000 rpm from FlashSale bf",
        ),
        ("Storefront", "Scaled", "because FlashSale bf is PreWarming"),
        ("FlashSale", "PhaseChanged", "Scheduled → PreWarming"),
        ("FlashSale", "PhaseChanged", "PreWarming → Active"),
        ("FlashSale", "LimitsOpened", "gateway 20000 rpm"),
    ] {
        wait_event(&ns, kind, reason, words).await;
    }

    // Going down: limits close at the end, capacity shrinks after the grace.
    let closed = when(&ns, "limits closed", Duration::from_secs(60), |c| {
        c.gateway_rpm == 5000 && c.orders_rpm == 1000
    })
    .await;
    boundary("limits-close", end, closed);
    assert_eq!(
        read(&ns).await.gateway_min,
        2,
        "capacity shrinks only after the grace"
    );
    let down = when(&ns, "capacity down", Duration::from_secs(30), |c| {
        c.gateway_min == 1 && c.orders_replicas == 1
    })
    .await;
    boundary("capacity-down", end + SignedDuration::from_secs(10), down);

    wait_event(
        &ns,
        "Storefront",
        "RateLimit",
        "gateway: 5000 rpm from spec",
    )
    .await;
    // Byte for byte what the spec alone gives.
    wait_phase(&sales, "bf", SalePhase::Completed, Duration::from_secs(5)).await;
    let after = read(&ns).await;
    assert_eq!(after.routes, before.routes, "route table restored exactly");
    assert_eq!(after.hpa_spec, before.hpa_spec, "HPA restored exactly");
    assert_eq!(
        after.orders_spec, before.orders_spec,
        "orders Deployment restored exactly"
    );
}

#[tokio::test]
async fn overlapping_sales_take_the_maximum_and_deleting_a_sale_restores_at_once() {
    let (_client, ns) = setup("overlap").await;
    let before = read(&ns).await;
    let sales: Api<FlashSale> = ns.api();
    let now = Timestamp::now();
    let window = format!(
        "  start: \"{}\"\n  end: \"{}\"\n  prewarm: 1s\n",
        at_second(now, 1),
        at_second(now, 3600)
    );
    sales
        .create(
            &PostParams::default(),
            &sale_yaml(
                "small",
                &window,
                "    gateway: {scale: {minReplicas: 2, maxReplicas: 4}, rateLimit: {requestsPerMinute: 10000}}\n",
            ),
        )
        .await
        .unwrap();
    sales
        .create(
            &PostParams::default(),
            &sale_yaml(
                "big",
                &window,
                "    gateway: {scale: {minReplicas: 3, maxReplicas: 3}, rateLimit: {requestsPerMinute: 30000}}\n",
            ),
        )
        .await
        .unwrap();
    // Floor from `big`, ceiling from `small`, limit from `big`.
    when(&ns, "merged sales", Duration::from_secs(120), |c| {
        c.gateway_min == 3 && c.gateway_max == 4 && c.gateway_rpm == 30000
    })
    .await;

    let t = Timestamp::now();
    sales.delete("big", &DeleteParams::default()).await.unwrap();
    let seen = when(&ns, "big gone", Duration::from_secs(10), |c| {
        c.gateway_min == 2 && c.gateway_max == 4 && c.gateway_rpm == 10000
    })
    .await;
    println!(
        "figure: delete-one-of-two-sales_ms={}",
        seen.duration_since(t).as_millis()
    );

    let t = Timestamp::now();
    sales
        .delete("small", &DeleteParams::default())
        .await
        .unwrap();
    let seen = when(&ns, "shop restored", Duration::from_secs(10), |c| {
        c.gateway_min == 1 && c.gateway_max == 3 && c.gateway_rpm == 5000
    })
    .await;
    println!(
        "figure: delete-mid-sale-to-restored_ms={}",
        seen.duration_since(t).as_millis()
    );
    assert!(seen.duration_since(t) < SignedDuration::from_secs(3));
    let after = read(&ns).await;
    assert_eq!(after.routes, before.routes);
    assert_eq!(after.hpa_spec, before.hpa_spec);
}

#[tokio::test]
async fn a_recurring_sale_runs_its_cycles() {
    let (_client, ns) = setup("recurring").await;
    let cycles: usize = std::env::var("E2E_SALE_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let sales: Api<FlashSale> = ns.api();
    // Create the sale between windows (after :30, before the :55 pre-warm), so that the first
    // cycle observed is a whole one.
    let sec = Timestamp::now().as_second().rem_euclid(60);
    if !(31..=50).contains(&sec) {
        tokio::time::sleep(Duration::from_secs(((31 - sec).rem_euclid(60)) as u64)).await;
    }
    sales
        .create(
            &PostParams::default(),
            &sale_yaml(
                "minutely",
                "  schedule: {cron: '* * * * *', duration: 20s, timeZone: Europe/Berlin}\n  prewarm: 5s\n",
                "    orders: {factor: 2, rateLimit: {requestsPerMinute: 3000}}\n",
            ),
        )
        .await
        .unwrap();
    let minute = |t: Timestamp| {
        Timestamp::from_second(t.as_second() - t.as_second().rem_euclid(60)).unwrap()
    };
    for cycle in 0..cycles {
        // Wait until the cycle's capacity rises; derive the window from the minute it rose in.
        let up = when(&ns, "capacity up", Duration::from_secs(75), |c| {
            c.orders_replicas == 2
        })
        .await;
        let start = minute(up + SignedDuration::from_secs(10));
        boundary(
            &format!("recurring-{cycle}-capacity-up"),
            start - SignedDuration::from_secs(5),
            up,
        );
        // Limits open at the start once the doubled orders capacity is Ready. On a loaded
        // machine the new pod may not be Ready within the 20 s window: then the limits must
        // stay closed for the whole window and the sale must say why (CapacityLate).
        let window_end = start + SignedDuration::from_secs(20);
        let budget =
            Duration::try_from(window_end.duration_since(Timestamp::now())).unwrap_or_default();
        match when_within(&ns, budget, |c| c.orders_rpm == 3000).await {
            Some(open) => {
                assert!(
                    open >= start,
                    "limits opened before the window: {open} < {start}"
                );
                let lag = open.duration_since(start);
                println!(
                    "figure: boundary recurring-{cycle}-limits-open scheduled={start} observed={open} lag_ms={}",
                    lag.as_millis()
                );
                let closed = when(&ns, "limits closed", Duration::from_secs(40), |c| {
                    c.orders_rpm == 1000
                })
                .await;
                boundary(
                    &format!("recurring-{cycle}-limits-close"),
                    window_end,
                    closed,
                );
            }
            None => {
                println!("figure: recurring-{cycle} capacity late for the whole window");
                wait_event(&ns, "FlashSale", "CapacityLate", "orders 1/2").await;
            }
        }
        let down = when(&ns, "capacity down", Duration::from_secs(30), |c| {
            c.orders_replicas == 1
        })
        .await;
        boundary(
            &format!("recurring-{cycle}-capacity-down"),
            start + SignedDuration::from_secs(30),
            down,
        );
        // The operator scales the Deployment down, then writes the sale's status in the same
        // reconcile: the status may trail the replica count by a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let s = loop {
            let s = sales.get("minutely").await.unwrap().status.unwrap();
            if s.phase == Some(SalePhase::Scheduled) || std::time::Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            s.phase,
            Some(SalePhase::Scheduled),
            "between windows: {s:?}"
        );
    }
}
