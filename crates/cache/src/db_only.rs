//! Database-only data: profile extras, notifications and sessions. Never
//! touched by chain data, upserts or rollbacks.

use healthledger_core::{
    CacheError, CacheResult, HhNumber, NewNotification, Notification, NotificationKind,
    PhoneNumber, ProfileExtras, Session, SessionTokenHash, Timestamp,
};

use crate::SqlCache;
use crate::convert::{get, hash_col, hash_of, hh_col, hh_of, parse, ts_col, ts_of, uint};
use crate::dialect::vals;
use crate::error::{Error, Result};

impl SqlCache {
    /// Inserts or replaces a cached user's extras ([`CachePort::set_extras`](healthledger_core::CachePort::set_extras)).
    pub(crate) async fn upsert_extras(
        &self,
        hh: HhNumber,
        extras: &ProfileExtras,
    ) -> CacheResult<()> {
        let known = self
            .one(
                &self.db,
                "checking the user",
                "SELECT hh FROM users WHERE hh = $1",
                vals![hh_col(hh)],
            )
            .await?;
        if known.is_none() {
            return Err(CacheError::NotFound(format!(
                "HH number {hh} is not cached"
            )));
        }
        self.exec(
            &self.db,
            "writing extras",
            "INSERT INTO extras (hh, phone, emergency_contact, allergies, notes)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (hh) DO UPDATE SET phone = excluded.phone,
                emergency_contact = excluded.emergency_contact,
                allergies = excluded.allergies, notes = excluded.notes",
            vals![
                hh_col(hh),
                extras.phone.as_ref().map(|v| v.as_str().to_owned()),
                extras
                    .emergency_contact
                    .as_ref()
                    .map(|v| v.as_str().to_owned()),
                extras.allergies.as_ref().map(|v| v.as_str().to_owned()),
                extras.notes.as_ref().map(|v| v.as_str().to_owned())
            ],
        )
        .await?;
        Ok(())
    }

    /// A user's extras ([`CachePort::extras`](healthledger_core::CachePort::extras)).
    pub(crate) async fn load_extras(&self, hh: HhNumber) -> CacheResult<Option<ProfileExtras>> {
        let Some(row) = self
            .one(
                &self.read,
                "reading extras",
                "SELECT * FROM extras WHERE hh = $1",
                vals![hh_col(hh)],
            )
            .await?
        else {
            return Ok(None);
        };
        let t = "extras";
        let text = |col: &str| get::<Option<String>>(&row, t, col);
        Ok(Some(ProfileExtras {
            phone: text("phone")?
                .map(|v| PhoneNumber::new(&v).map_err(|e| Error::corrupt(t, e)))
                .transpose()?,
            emergency_contact: text("emergency_contact")?
                .map(|v| parse(t, v))
                .transpose()?,
            allergies: text("allergies")?.map(|v| parse(t, v)).transpose()?,
            notes: text("notes")?.map(|v| parse(t, v)).transpose()?,
        }))
    }

    /// Stores a notification ([`CachePort::add_notification`](healthledger_core::CachePort::add_notification)).
    pub(crate) async fn insert_notification(
        &self,
        n: &NewNotification,
    ) -> CacheResult<Notification> {
        let row = self
            .one(
                &self.db,
                "storing a notification",
                "INSERT INTO notifications (user_hh, kind, title, message, related_record,
                    created_at, is_read)
                 VALUES ($1, $2, $3, $4, $5, $6, FALSE) RETURNING id",
                vals![
                    hh_col(n.user),
                    n.kind.as_str(),
                    n.title.as_str(),
                    n.message.as_str(),
                    n.related_record.map(|r| r.to_string()),
                    ts_col(n.created_at)
                ],
            )
            .await?
            .ok_or_else(|| Error::corrupt("notifications", "the insert returned no id"))?;
        Ok(Notification {
            id: uint("notifications", "id", get(&row, "notifications", "id")?)?,
            body: n.clone(),
            read: false,
        })
    }

    /// A user's notifications, newest first ([`CachePort::notifications`](healthledger_core::CachePort::notifications)).
    pub(crate) async fn load_notifications(
        &self,
        user: HhNumber,
        unread_only: bool,
    ) -> CacheResult<Vec<Notification>> {
        let sql = format!(
            "SELECT * FROM notifications WHERE user_hh = $1{}
             ORDER BY created_at DESC, id DESC",
            if unread_only {
                " AND is_read = FALSE"
            } else {
                ""
            }
        );
        let t = "notifications";
        self.all(
            &self.read,
            "listing notifications",
            &sql,
            vals![hh_col(user)],
        )
        .await?
        .iter()
        .map(|row| -> Result<Notification> {
            let kind: String = get(row, t, "kind")?;
            Ok(Notification {
                id: uint(t, "id", get(row, t, "id")?)?,
                body: NewNotification {
                    user: hh_of(t, get(row, t, "user_hh")?)?,
                    kind: NotificationKind::parse(&kind).ok_or_else(|| {
                        Error::corrupt(t, format!("unknown notification kind {kind:?}"))
                    })?,
                    title: parse(t, get::<String>(row, t, "title")?)?,
                    message: parse(t, get::<String>(row, t, "message")?)?,
                    related_record: get::<Option<String>>(row, t, "related_record")?
                        .map(|r| parse(t, r))
                        .transpose()?,
                    created_at: ts_of(get(row, t, "created_at")?),
                },
                read: get(row, t, "is_read")?,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map_err(Into::into)
    }

    /// Marks a notification read ([`CachePort::mark_notification_read`](healthledger_core::CachePort::mark_notification_read)).
    pub(crate) async fn mark_read(&self, id: u64) -> CacheResult<()> {
        let changed = match i64::try_from(id) {
            Ok(id) => {
                self.exec(
                    &self.db,
                    "marking a notification read",
                    "UPDATE notifications SET is_read = TRUE WHERE id = $1",
                    vals![id],
                )
                .await?
            }
            Err(_) => 0,
        };
        if changed == 0 {
            return Err(CacheError::NotFound(format!("notification {id}")));
        }
        Ok(())
    }

    /// Stores a new session ([`CachePort::put_session`](healthledger_core::CachePort::put_session)).
    pub(crate) async fn insert_session(&self, session: &Session) -> CacheResult<()> {
        let inserted = self
            .exec(
                &self.db,
                "storing a session",
                "INSERT INTO sessions (token_hash, hh, wallet, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_hash) DO NOTHING",
                vals![
                    hash_col(session.token_hash.0),
                    hh_col(session.hh),
                    session.wallet.to_string(),
                    ts_col(session.created_at),
                    ts_col(session.expires_at)
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(CacheError::AlreadyExists(
                "a session with this token hash is already stored".into(),
            ));
        }
        Ok(())
    }

    /// A session by token hash ([`CachePort::session`](healthledger_core::CachePort::session)).
    pub(crate) async fn load_session(
        &self,
        token_hash: SessionTokenHash,
    ) -> CacheResult<Option<Session>> {
        let t = "sessions";
        self.one(
            &self.read,
            "reading a session",
            "SELECT * FROM sessions WHERE token_hash = $1",
            vals![hash_col(token_hash.0)],
        )
        .await?
        .map(|row| -> Result<Session> {
            Ok(Session {
                token_hash: SessionTokenHash(hash_of(t, &get::<Vec<u8>>(&row, t, "token_hash")?)?),
                hh: hh_of(t, get(&row, t, "hh")?)?,
                wallet: parse(t, get::<String>(&row, t, "wallet")?)?,
                created_at: ts_of(get(&row, t, "created_at")?),
                expires_at: ts_of(get(&row, t, "expires_at")?),
            })
        })
        .transpose()
        .map_err(Into::into)
    }

    /// Deletes a session ([`CachePort::delete_session`](healthledger_core::CachePort::delete_session)).
    pub(crate) async fn delete_session_row(
        &self,
        token_hash: SessionTokenHash,
    ) -> CacheResult<bool> {
        Ok(self
            .exec(
                &self.db,
                "deleting a session",
                "DELETE FROM sessions WHERE token_hash = $1",
                vals![hash_col(token_hash.0)],
            )
            .await?
            > 0)
    }

    /// Deletes expired sessions ([`CachePort::purge_expired_sessions`](healthledger_core::CachePort::purge_expired_sessions)).
    pub(crate) async fn purge_sessions(&self, now: Timestamp) -> CacheResult<u64> {
        Ok(self
            .exec(
                &self.db,
                "purging expired sessions",
                "DELETE FROM sessions WHERE expires_at <= $1",
                vals![ts_col(now)],
            )
            .await?)
    }
}
