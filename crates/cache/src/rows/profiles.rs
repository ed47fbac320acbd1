//! Profile rows: `users` plus one table per role; reading, the checked
//! upsert (wallet owner and role compared) and deleting.

use healthledger_core::{
    CacheError, CacheResult, ChainSource, DateOfBirth, DiagnosticCenterProfile, DoctorProfile,
    HhNumber, PatientProfile, Profile, Role, WalletAddress,
};
use sea_orm::{ConnectionTrait, QueryResult};

use super::source_of;
use crate::SqlCache;
use crate::convert::{
    date_col, date_of, get, hash_col, hh_col, hh_of, int, parse, role_col, role_of,
};
use crate::dialect::vals;
use crate::error::{Error, Result};

/// A profile's columns (`users` joined with its role's table); a filter
/// on `u` follows.
pub(crate) const PROFILE_SELECT: &str =
    "SELECT u.hh, u.role, u.wallet, u.source_block, u.source_tx,
        p.name AS p_name, p.date_of_birth AS p_dob, p.gender AS p_gender,
        p.blood_group AS p_blood, p.home_address AS p_address, p.email AS p_email,
        d.name AS d_name, d.specialization AS d_spec, d.hospital AS d_hospital,
        d.email AS d_email,
        c.name AS c_name, c.location AS c_location, c.email AS c_email
    FROM users u
    LEFT JOIN patients p ON p.hh = u.hh
    LEFT JOIN doctors d ON d.hh = u.hh
    LEFT JOIN diagnostic_centers c ON c.hh = u.hh";

pub(crate) fn patient_of_row(row: &QueryResult) -> Result<PatientProfile> {
    let t = "patients";
    let dob = date_of(t, get(row, t, "date_of_birth")?)?;
    Ok(PatientProfile {
        hh: hh_of(t, get(row, t, "hh")?)?,
        wallet: parse(t, get::<String>(row, t, "wallet")?)?,
        name: parse(t, get::<String>(row, t, "name")?)?,
        date_of_birth: DateOfBirth::new(dob).map_err(|e| Error::corrupt(t, e))?,
        gender: parse(t, get::<String>(row, t, "gender")?)?,
        blood_group: parse(t, get::<String>(row, t, "blood_group")?)?,
        home_address: parse(t, get::<String>(row, t, "home_address")?)?,
        email: parse(t, get::<String>(row, t, "email")?)?,
    })
}

impl SqlCache {
    pub(crate) async fn load_profile<C: ConnectionTrait>(
        &self,
        c: &C,
        hh: HhNumber,
    ) -> Result<Option<(Profile, ChainSource)>> {
        let sql = format!("{PROFILE_SELECT} WHERE u.hh = $1");
        self.one(c, "reading a profile", &sql, vals![hh_col(hh)])
            .await?
            .map(|row| profile_of_row(&row))
            .transpose()
    }
}

/// A profile and its source from a [`PROFILE_SELECT`] row.
pub(crate) fn profile_of_row(row: &QueryResult) -> Result<(Profile, ChainSource)> {
    {
        let t = "users";
        let hh = hh_of(t, get(row, t, "hh")?)?;
        let role = role_of(t, get(row, t, "role")?)?;
        let wallet: WalletAddress = parse(t, get::<String>(row, t, "wallet")?)?;
        let source = source_of(row, t, "source_block", "source_tx")?;
        let profile = match role {
            Role::Patient => {
                let t = "patients";
                let dob = date_of(t, get(row, t, "p_dob")?)?;
                Profile::Patient(PatientProfile {
                    hh,
                    wallet,
                    name: parse(t, get::<String>(row, t, "p_name")?)?,
                    date_of_birth: DateOfBirth::new(dob).map_err(|e| Error::corrupt(t, e))?,
                    gender: parse(t, get::<String>(row, t, "p_gender")?)?,
                    blood_group: parse(t, get::<String>(row, t, "p_blood")?)?,
                    home_address: parse(t, get::<String>(row, t, "p_address")?)?,
                    email: parse(t, get::<String>(row, t, "p_email")?)?,
                })
            }
            Role::Doctor => {
                let t = "doctors";
                Profile::Doctor(DoctorProfile {
                    hh,
                    wallet,
                    name: parse(t, get::<String>(row, t, "d_name")?)?,
                    specialization: parse(t, get::<String>(row, t, "d_spec")?)?,
                    hospital: parse(t, get::<String>(row, t, "d_hospital")?)?,
                    email: parse(t, get::<String>(row, t, "d_email")?)?,
                })
            }
            Role::DiagnosticCenter => {
                let t = "diagnostic_centers";
                Profile::DiagnosticCenter(DiagnosticCenterProfile {
                    hh,
                    wallet,
                    name: parse(t, get::<String>(row, t, "c_name")?)?,
                    location: parse(t, get::<String>(row, t, "c_location")?)?,
                    email: parse(t, get::<String>(row, t, "c_email")?)?,
                })
            }
        };
        Ok((profile, source))
    }
}

impl SqlCache {
    /// Checks ownership rules, then writes the profile.
    pub(crate) async fn upsert_profile_in<C: ConnectionTrait>(
        &self,
        c: &C,
        profile: &Profile,
        source: ChainSource,
    ) -> CacheResult<()> {
        let hh = profile.hh();
        let wallet = profile.wallet();
        if let Some(row) = self
            .one(
                c,
                "checking the wallet's owner",
                "SELECT hh FROM users WHERE wallet = $1 AND hh <> $2",
                vals![wallet.to_string(), hh_col(hh)],
            )
            .await?
        {
            let owner = hh_of("users", get(&row, "users", "hh")?)?;
            return Err(CacheError::Conflict(format!(
                "wallet {wallet} already belongs to HH number {owner}"
            )));
        }
        if let Some(row) = self
            .one(
                c,
                "checking the user's role",
                "SELECT role FROM users WHERE hh = $1",
                vals![hh_col(hh)],
            )
            .await?
        {
            let role = role_of("users", get(&row, "users", "role")?)?;
            if role != profile.role() {
                return Err(CacheError::Conflict(format!(
                    "HH number {hh} is cached as a {role}, not a {}",
                    profile.role()
                )));
            }
        }
        // The check above reads without a lock: a concurrent writer may
        // have cached the HH number with another role since, and then the
        // guarded upsert writes nothing.
        if !self.upsert_profile_row(c, profile, source).await? {
            return Err(CacheError::Conflict(format!(
                "HH number {hh} is cached with another role than {}",
                profile.role()
            )));
        }
        Ok(())
    }

    /// Writes the user row and the role's profile row; `false` (and
    /// nothing written) when the HH number is cached with another role.
    /// The role is compared inside the upsert (`ON CONFLICT … WHERE`), so
    /// two concurrent writers of one HH number with different roles cannot
    /// both succeed: PostgreSQL makes the second wait for the first's
    /// commit and then evaluates the condition against its row.
    pub(crate) async fn upsert_profile_row<C: ConnectionTrait>(
        &self,
        c: &C,
        profile: &Profile,
        source: ChainSource,
    ) -> Result<bool> {
        let hh = hh_col(profile.hh());
        let block = int("block number", source.block_number)?;
        let tx = hash_col(source.tx_hash);
        let written = self
            .exec(
                c,
                "writing a user",
                "INSERT INTO users (hh, role, wallet, source_block, source_tx)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (hh) DO UPDATE SET wallet = excluded.wallet,
                source_block = excluded.source_block, source_tx = excluded.source_tx
             WHERE users.role = excluded.role",
                vals![
                    hh,
                    role_col(profile.role()),
                    profile.wallet().to_string(),
                    block,
                    tx.clone()
                ],
            )
            .await?;
        if written == 0 {
            return Ok(false);
        }
        match profile {
            Profile::Patient(p) => {
                self.exec(
                    c,
                    "writing a patient profile",
                    "INSERT INTO patients (hh, name, name_lower, date_of_birth, gender,
                        blood_group, home_address, email, source_block, source_tx)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (hh) DO UPDATE SET name = excluded.name,
                        name_lower = excluded.name_lower,
                        date_of_birth = excluded.date_of_birth, gender = excluded.gender,
                        blood_group = excluded.blood_group,
                        home_address = excluded.home_address, email = excluded.email,
                        source_block = excluded.source_block, source_tx = excluded.source_tx",
                    vals![
                        hh,
                        p.name.as_str(),
                        p.name.as_str().to_lowercase(),
                        date_col(p.date_of_birth.date()),
                        p.gender.as_str(),
                        p.blood_group.as_str(),
                        p.home_address.as_str(),
                        p.email.as_str(),
                        block,
                        tx
                    ],
                )
                .await?;
            }
            Profile::Doctor(d) => {
                self.exec(
                    c,
                    "writing a doctor profile",
                    "INSERT INTO doctors (hh, name, specialization, hospital, email,
                        source_block, source_tx)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (hh) DO UPDATE SET name = excluded.name,
                        specialization = excluded.specialization,
                        hospital = excluded.hospital, email = excluded.email,
                        source_block = excluded.source_block, source_tx = excluded.source_tx",
                    vals![
                        hh,
                        d.name.as_str(),
                        d.specialization.as_str(),
                        d.hospital.as_str(),
                        d.email.as_str(),
                        block,
                        tx
                    ],
                )
                .await?;
            }
            Profile::DiagnosticCenter(dc) => {
                self.exec(
                    c,
                    "writing a diagnostic-center profile",
                    "INSERT INTO diagnostic_centers (hh, name, location, email,
                        source_block, source_tx)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (hh) DO UPDATE SET name = excluded.name,
                        location = excluded.location, email = excluded.email,
                        source_block = excluded.source_block, source_tx = excluded.source_tx",
                    vals![
                        hh,
                        dc.name.as_str(),
                        dc.location.as_str(),
                        dc.email.as_str(),
                        block,
                        tx
                    ],
                )
                .await?;
            }
        }
        Ok(true)
    }

    pub(crate) async fn delete_profile<C: ConnectionTrait>(
        &self,
        c: &C,
        hh: HhNumber,
    ) -> Result<()> {
        for table in ["patients", "doctors", "diagnostic_centers", "users"] {
            self.exec(
                c,
                "deleting a profile",
                &format!("DELETE FROM {table} WHERE hh = $1"),
                vals![hh_col(hh)],
            )
            .await?;
        }
        Ok(())
    }

    /// The HH number and role owning `wallet` ([`CachePort::account_of`](healthledger_core::CachePort::account_of)).
    pub(crate) async fn find_account(
        &self,
        wallet: WalletAddress,
    ) -> CacheResult<Option<(Role, HhNumber)>> {
        let row = self
            .one(
                &self.read,
                "looking up a wallet",
                "SELECT hh, role FROM users WHERE wallet = $1",
                vals![wallet.to_string()],
            )
            .await?;
        Ok(row
            .map(|row| -> Result<_> {
                Ok((
                    role_of("users", get(&row, "users", "role")?)?,
                    hh_of("users", get(&row, "users", "hh")?)?,
                ))
            })
            .transpose()?)
    }
}
