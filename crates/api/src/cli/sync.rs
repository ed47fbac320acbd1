//! `healthledger sync …`: targeted, full, auto and follow, in the seed
//! guide's output style, with progress bars for long work.

use super::*;

pub(super) async fn sync(app: &App, out: &Out, command: SyncCommand) -> crate::Result<ExitCode> {
    let stale = |remove: bool| if remove { Stale::Remove } else { Stale::Report };
    let (what, outcome) = match command {
        SyncCommand::Patient(t) => {
            let hh = parse_hh(&t.hh)?;
            out.header(&format!("📋 Syncing patient profile: {hh}"));
            (
                "patient profile",
                app.sync().sync_patient(hh, stale(t.remove_stale)).await?,
            )
        }
        SyncCommand::Doctor(t) => {
            let hh = parse_hh(&t.hh)?;
            out.header(&format!("📋 Syncing doctor profile: {hh}"));
            (
                "doctor profile",
                app.sync().sync_doctor(hh, stale(t.remove_stale)).await?,
            )
        }
        SyncCommand::Diagnostic(t) => {
            let hh = parse_hh(&t.hh)?;
            out.header(&format!("📋 Syncing diagnostic center profile: {hh}"));
            (
                "diagnostic center profile",
                app.sync()
                    .sync_diagnostic(hh, stale(t.remove_stale))
                    .await?,
            )
        }
        SyncCommand::Record { id, remove_stale } => {
            let id: RecordId = id.parse()?;
            out.header(&format!("📋 Syncing record: {id}"));
            (
                "record",
                app.sync().sync_record(id, stale(remove_stale)).await?,
            )
        }
        SyncCommand::Full => {
            out.header("📋 Full sync at one pinned block");
            let engine = with_bars(app, out);
            let at = engine.full_sync().await?;
            let status = app.sync().status().await?;
            out.emit(&status, || {
                vec![
                    format!("✅ Cache replaced by the chain's state at block {at}"),
                    counts_line(&status.counts),
                    String::new(),
                    story::RULE.into(),
                    "✅ Sync operation completed successfully".into(),
                ]
            });
            return Ok(ExitCode::SUCCESS);
        }
        SyncCommand::Auto => {
            out.header("📋 Syncing to the head");
            let engine = with_bars(app, out);
            let steps = engine.sync().await?;
            let status = app.sync().status().await?;
            out.emit(&status, || {
                vec![
                    format!(
                        "✅ {steps} step(s); checkpoint {} (head {})",
                        status.checkpoint.map_or(0, |b| b.number),
                        status.head.number
                    ),
                    counts_line(&status.counts),
                    String::new(),
                    story::RULE.into(),
                    "✅ Sync operation completed successfully".into(),
                ]
            });
            return Ok(ExitCode::SUCCESS);
        }
        SyncCommand::Follow => return follow(app, out).await,
        SyncCommand::Status => {
            let status = app.sync().status().await?;
            out.emit(&status, || {
                vec![
                    format!("📋 Sync status ({})", app.wiring().chain),
                    format!("   is syncing:     {}", status.is_syncing),
                    format!(
                        "   last sync time: {}",
                        status
                            .last_sync_time
                            .map_or("never (this process)".into(), |t| t.0.to_string())
                    ),
                    format!(
                        "   checkpoint:     {}",
                        status
                            .checkpoint
                            .map_or("none".into(), |b| b.number.to_string())
                    ),
                    format!("   head:           {}", status.head.number),
                    format!("   finalized:      {}", status.finalized.number),
                    format!(
                        "   lag:            {} blocks, {} s",
                        status.lag_blocks, status.lag_seconds
                    ),
                    format!("   quarantined:    {}", status.quarantined),
                    counts_line(&status.counts),
                ]
            });
            return Ok(ExitCode::SUCCESS);
        }
    };
    report_outcome(out, what, &outcome)
}

pub(super) fn report_outcome(out: &Out, what: &str, outcome: &Outcome) -> crate::Result<ExitCode> {
    let (line, code) = match outcome {
        Outcome::Created => (format!("✅ Created {what} in database"), ExitCode::SUCCESS),
        Outcome::Updated => (format!("✅ Updated {what} in database"), ExitCode::SUCCESS),
        Outcome::Unchanged => (format!("✅ {what} already up to date"), ExitCode::SUCCESS),
        Outcome::NotOnChain => (
            format!("❌ No such {what} on chain: nothing written"),
            ExitCode::from(ExitKind::NotFound as u8),
        ),
        Outcome::OtherRole(r) => (
            format!("❌ The HH number is registered on chain as a {r}: nothing written"),
            ExitCode::from(ExitKind::NotFound as u8),
        ),
        Outcome::Gone { removed } => (
            format!(
                "❌ The cache holds a {what} the chain does not have{}",
                if *removed {
                    " (removed)"
                } else {
                    " (run with --remove-stale to remove it)"
                }
            ),
            ExitCode::from(ExitKind::Drift as u8),
        ),
    };
    let ok = code == ExitCode::SUCCESS;
    out.emit(&serde_json::json!({ "outcome": outcome }), || {
        let mut lines = vec![line.clone()];
        if ok {
            lines.push(format!("✅ {} synced successfully", capitalize(what)));
        }
        lines.push(String::new());
        lines.push(story::RULE.into());
        lines.push(if ok {
            "✅ Sync operation completed successfully".into()
        } else {
            "❌ Sync operation did not complete".into()
        });
        lines
    });
    Ok(code)
}

pub(super) async fn follow(app: &App, out: &Out) -> crate::Result<ExitCode> {
    out.header("📋 Following the chain (SIGINT or SIGTERM stops after the current batch)");
    let job = app.spawn_follow();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Unavailable(format!("cannot watch SIGTERM: {e}")))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    job.stop().await?;
    let status = app.sync().status().await?;
    out.emit(&status, || {
        vec![format!(
            "✅ Stopped at checkpoint {}",
            status.checkpoint.map_or(0, |b| b.number)
        )]
    });
    Ok(ExitCode::SUCCESS)
}

/// A sync engine over the app's ports that draws progress bars (not with
/// `--json`).
pub(super) fn with_bars(app: &App, out: &Out) -> SyncEngine {
    let engine = SyncEngine::new(
        app.ledger().clone(),
        app.cache().clone(),
        app.sync().config().clone(),
    );
    if out.json {
        return engine;
    }
    let bars = Arc::new(std::sync::Mutex::new(
        None::<(Phase, indicatif::ProgressBar)>,
    ));
    engine.with_progress(Arc::new(move |p: &Progress| {
        let Ok(mut slot) = bars.lock() else { return };
        if slot.as_ref().is_none_or(|(phase, _)| *phase != p.phase) {
            if let Some((_, old)) = slot.take() {
                old.finish();
            }
            let bar = indicatif::ProgressBar::new(p.total);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{:?}", p.phase));
            *slot = Some((p.phase, bar));
        }
        if let Some((_, bar)) = slot.as_ref() {
            bar.set_length(p.total);
            bar.set_position(p.done);
            bar.set_message(format!("{} events, {:.0}/s", p.events, p.per_second));
            if p.done >= p.total {
                bar.finish();
            }
        }
    }))
}

pub(super) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
