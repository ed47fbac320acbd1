//! `verify`, `db view`, `chain deploy` (remote) and `cid`: looking at and
//! checking what the chain, the cache and the vault hold.

use super::*;

pub(super) async fn verify(app: &App, out: &Out, args: &VerifyArgs) -> crate::Result<ExitCode> {
    let drift = app.sync().verify_drift().await?;
    let repair = if args.repair && !drift.is_clean() {
        Some(app.sync().repair(&drift).await?)
    } else {
        None
    };
    let vault = if args.vault {
        let config = healthledger_sync::integrity::VaultAuditConfig {
            grace: std::time::Duration::from_secs(args.grace_secs),
            remove_orphans: args.remove_orphans,
            concurrency: 8,
        };
        Some(app.sync().audit_vault(app.vault().as_ref(), config).await?)
    } else {
        None
    };
    let audit = if args.audit {
        Some(app.sync().audit_access_log().await?)
    } else {
        None
    };
    let drift_left = !drift.is_clean() && repair.is_none();
    let vault_bad = vault.as_ref().is_some_and(|v| !v.is_clean());
    let audit_bad = audit.as_ref().is_some_and(|a| !a.is_clean());
    let report = serde_json::json!({
        "drift": drift, "repair": repair, "vault": vault, "access_log": audit,
    });
    out.emit(&report, || {
        let mut lines = vec![format!(
            "📋 Chain at block {} vs cache: {} missing, {} stale, {} extra",
            drift.at.number,
            drift.missing.len(),
            drift.stale.len(),
            drift.extra.len()
        )];
        for s in &drift.stale {
            lines.push(format!("   stale {:?}: {:?}", s.chain.key(), s.fields));
        }
        for m in &drift.missing {
            lines.push(format!("   missing {:?}", m.key()));
        }
        for e in &drift.extra {
            lines.push(format!("   extra {e:?}"));
        }
        if let Some(r) = &repair {
            lines.push(format!(
                "✅ Repaired: {} upserted, {} removed, {} already right",
                r.upserted, r.removed, r.unchanged
            ));
        }
        if let Some(v) = &vault {
            lines.push(format!(
                "📋 Vault: {} of {} records intact, {} problem(s), {} orphan(s) ({} removed)",
                v.intact,
                v.records,
                v.problems.len(),
                v.orphans.len(),
                v.orphans.iter().filter(|o| o.removed).count()
            ));
            for p in &v.problems {
                lines.push(format!("   {} ({}): {:?}", p.record, p.cid, p.status));
            }
        }
        if let Some(a) = &audit {
            lines.push(format!(
                "📋 Access log: {} entries, first broken {:?}, chain anchor holds {:?}",
                a.entries, a.first_broken, a.anchor_holds
            ));
        }
        lines.push(String::new());
        lines.push(story::RULE.into());
        lines.push(if drift_left || vault_bad || audit_bad {
            "❌ Verification found problems".into()
        } else {
            "✅ Verification passed".into()
        });
        lines
    });
    Ok(if drift_left || vault_bad || audit_bad {
        ExitCode::from(ExitKind::Drift as u8)
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) async fn db_view(app: &App, out: &Out, limit: u64) -> crate::Result<ExitCode> {
    let counts = app.cache().counts().await?;
    let checkpoint = app.cache().checkpoint().await?;
    let recent = app
        .cache()
        .search_records(&RecordQuery {
            limit: limit.max(1),
            ..RecordQuery::default()
        })
        .await?;
    #[derive(Serialize)]
    struct View<'a> {
        cache: &'a str,
        counts: healthledger_core::CacheCounts,
        checkpoint: Option<healthledger_core::BlockRef>,
        recent_records: &'a [healthledger_core::MedicalRecord],
    }
    let view = View {
        cache: &app.wiring().cache,
        counts,
        checkpoint,
        recent_records: &recent,
    };
    out.emit(&view, || {
        let mut lines = vec![
            format!("📋 Cache {}", app.wiring().cache),
            counts_line(&counts),
            format!(
                "   checkpoint: {}",
                checkpoint.map_or("none".into(), |b| b.to_string())
            ),
            format!("📋 {} most recent record(s):", recent.len()),
        ];
        lines.extend(recent.iter().map(|r| {
            format!(
                "   {}  {}  {}  {}  by {}  {}",
                r.id, r.meta.date, r.meta.record_type, r.meta.test_name, r.creator, r.cid
            )
        }));
        lines
    });
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn deploy(out: &Out, config: &Config) -> crate::Result<ExitCode> {
    let crate::ChainConfig::Remote {
        rpc_url,
        signer_key,
        ..
    } = &config.chain
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let key = signer_key
        .expose()
        .parse::<healthledger_chain::SignerKey>()
        .map_err(Error::from)?;
    let contract = healthledger_chain::EvmLedger::deploy(rpc_url, &key).await?;
    out.emit(
        &serde_json::json!({ "contract": contract.to_string() }),
        || {
            vec![
                format!("✅ Deployed HealthLedger at {contract}"),
                format!("   set HEALTHLEDGER_CONTRACT={contract}"),
            ]
        },
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn cid(out: &Out, args: &CidArgs) -> crate::Result<ExitCode> {
    let version = if args.cid_version == 1 {
        CidVersion::V1
    } else {
        CidVersion::V0
    };
    let raw_leaves = args.raw_leaves.unwrap_or(version == CidVersion::V1);
    let options = CidOptions {
        cid_version: version,
        raw_leaves,
        ..CidOptions::KUBO_V0
    };
    options.validate().map_err(|e| {
        healthledger_core::ValidationError::new(
            "cid options",
            format!("{options:?}"),
            e.to_string(),
        )
    })?;
    let file = std::fs::File::open(&args.file).map_err(|e| {
        healthledger_core::ValidationError::new(
            "file",
            args.file.display().to_string(),
            format!("cannot be read: {e}"),
        )
    })?;
    let cid = compute_cid(std::io::BufReader::new(file), options).map_err(|e| {
        healthledger_core::ValidationError::new(
            "file",
            args.file.display().to_string(),
            format!("cannot be read: {e}"),
        )
    })?;
    out.emit(&serde_json::json!({ "cid": cid.to_string() }), || {
        vec![cid.to_string()]
    });
    Ok(ExitCode::SUCCESS)
}
