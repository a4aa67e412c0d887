//! People who log in (`users`) and their sessions (`sessions`).
//!
//! The store never sees a password or a session id: a user row keeps an argon2 PHC string made
//! by the caller, a session row the SHA-256 of its id ([`crate::hash_token`]). Expiry is kept as
//! Unix seconds so that it compares as a number on every backend.

use chrono::{DateTime, Utc};

use crate::rows::stored_time;
use crate::{Pool, Store, StoreError};

/// What a user may do; the API decides what each allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A dispatch operator: sees everything, acts on any incident.
    Operator,
    /// A shift supervisor: as an operator.
    Supervisor,
    /// A person of one agency: sees and acts on that agency's incidents only.
    Agency,
    /// An administrator: as a supervisor.
    Admin,
}

impl Role {
    /// Every role, in the order they are listed to people.
    pub const ALL: [Role; 4] = [Role::Operator, Role::Supervisor, Role::Agency, Role::Admin];

    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Agency => "agency",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role (operator, supervisor, agency, admin)"))
    }
}

/// A user as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The login name.
    pub username: String,
    /// The argon2 PHC string of the password.
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// The agency of an [`Role::Agency`] user.
    pub agency: Option<String>,
    /// When the user was made.
    pub created_at: DateTime<Utc>,
}

/// A live session and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The user's login name.
    pub username: String,
    /// The user's role.
    pub role: Role,
    /// The agency of an agency user.
    pub agency: Option<String>,
    /// The token state-changing requests must carry in `X-CSRF-Token`.
    pub csrf: String,
    /// When the session ends unless it is used again before (see [`Store::extend_session`]).
    pub expires_at: DateTime<Utc>,
    /// When it began (its lifetime is counted from here).
    pub created_at: DateTime<Utc>,
}

type UserRow = (String, String, String, Option<String>, DateTime<Utc>);

fn user_from_row(
    (username, password_hash, role, agency, created_at): UserRow,
) -> Result<User, StoreError> {
    let role = role
        .parse()
        .map_err(|e| StoreError::corrupt(format!("user {username:?}: {e}")))?;
    Ok(User {
        username,
        password_hash,
        role,
        agency,
        created_at,
    })
}

impl Store {
    /// Adds a user; `false` (and nothing written) when the name is taken. An agency user must
    /// name an agency and no other role may (the table refuses it otherwise).
    pub async fn add_user(&self, user: &User) -> Result<bool, StoreError> {
        let sql = "INSERT INTO users (username, password_hash, role, agency, created_at) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING";
        let at = stored_time(user.created_at);
        let n = with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(&user.agency)
                .bind(at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// The user with this name.
    pub async fn user(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = "SELECT username, password_hash, role, agency, created_at FROM users \
                   WHERE username = $1";
        let row: Option<UserRow> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(username)
                .fetch_optional(pool)
                .await?
        });
        row.map(user_from_row).transpose()
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let sql = "SELECT username, password_hash, role, agency, created_at FROM users \
                   ORDER BY username";
        let rows: Vec<UserRow> =
            with_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter().map(user_from_row).collect()
    }

    /// Replaces a user's password hash and ends all their sessions; `false` if there is no
    /// such user.
    pub async fn set_password(&self, username: &str, hash: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE username = $2")
                .bind(hash)
                .bind(username)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM sessions WHERE username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        Ok(n == 1)
    }

    /// Stores a new session under the hash of its id.
    pub async fn add_session(
        &self,
        hash: &str,
        username: &str,
        csrf: &str,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO sessions (hash, username, csrf, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4, $5)";
        let created_at = stored_time(created_at);
        with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(hash)
                .bind(username)
                .bind(csrf)
                .bind(created_at)
                .bind(expires_at.timestamp())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// The session with this hash, if it has not expired at `now`.
    pub async fn session(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let sql = "SELECT u.username, u.role, u.agency, s.csrf, s.expires_at, s.created_at \
                   FROM sessions s JOIN users u ON u.username = s.username \
                   WHERE s.hash = $1 AND s.expires_at > $2";
        type Row = (String, String, Option<String>, String, i64, DateTime<Utc>);
        let row: Option<Row> = with_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(hash)
                .bind(now.timestamp())
                .fetch_optional(pool)
                .await?
        });
        let Some((username, role, agency, csrf, expires, created_at)) = row else {
            return Ok(None);
        };
        let role = role
            .parse()
            .map_err(|e| StoreError::corrupt(format!("user {username:?}: {e}")))?;
        let expires_at = DateTime::from_timestamp(expires, 0)
            .ok_or_else(|| StoreError::corrupt(format!("session expiry {expires}")))?;
        Ok(Some(Session {
            username,
            role,
            agency,
            csrf,
            expires_at,
            created_at,
        }))
    }

    /// Moves the end of the session with this hash to `expires_at` (whole seconds), if it is
    /// still live at `now` and that is later than its present end: a session in use lives on,
    /// an idle one ends (and is never brought back). `false` if there was no such session.
    pub async fn extend_session(
        &self,
        hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(self, |pool| {
            sqlx::query(
                "UPDATE sessions SET expires_at = $3 \
                 WHERE hash = $1 AND expires_at > $2 AND expires_at < $3",
            )
            .bind(hash)
            .bind(now.timestamp())
            .bind(expires_at.timestamp())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Ends the session with this hash; `false` if there was none.
    pub async fn delete_session(&self, hash: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE hash = $1")
                .bind(hash)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Deletes the sessions expired at `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let n = with_pool!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now.timestamp())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_unknown_ones_are_refused() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
        assert!("Operator".parse::<Role>().is_err());
    }
}
