//! Public warnings (migration 0012 `public_warnings`): every version of an incident's warning,
//! append-only, written with its timeline entry in one transaction.

use chrono::{DateTime, Utc};
use geo::{MultiPolygon, Point};
use serde::{Deserialize, Serialize};

use model::warning::{WarningArea, WarningMessage, WarningText, WarningVersion};
use model::{CategoryId, IncidentId, IncidentStatus, Localized};

use crate::rows::stored_time;
use crate::{NewTimelineEntry, Pool, Store, StoreError};

/// The `area` column.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum AreaJson {
    /// `[lon, lat, radius_m]`.
    #[serde(rename = "circle")]
    Circle([f64; 3]),
    /// GeoJSON MultiPolygon coordinates, as the incidents' `area` column.
    #[serde(rename = "polygons")]
    Polygons(serde_json::Value),
}

/// The `area` column's text for `area`.
pub(crate) fn area_text(area: &WarningArea) -> String {
    let json = match area {
        WarningArea::Circle { center, radius_m } => {
            AreaJson::Circle([center.x(), center.y(), *radius_m])
        }
        WarningArea::Polygons(mp) => AreaJson::Polygons(
            serde_json::from_str(&crate::rows::area_json(mp)).unwrap_or_default(),
        ),
    };
    // Plain numbers and arrays always serialise.
    serde_json::to_string(&json).unwrap_or_default()
}

fn parse_area(text: &str) -> Option<WarningArea> {
    Some(match serde_json::from_str::<AreaJson>(text).ok()? {
        AreaJson::Circle([lon, lat, radius_m]) => WarningArea::Circle {
            center: Point::new(lon, lat),
            radius_m,
        },
        AreaJson::Polygons(v) => {
            let mp: MultiPolygon = crate::rows::parse_area(&v.to_string())?;
            WarningArea::Polygons(mp)
        }
    })
}

type WarningRow = (
    String,
    i64,
    String,
    DateTime<Utc>,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

const COLUMNS: &str = "w.incident_id, w.seq, w.msg_type, w.sent, w.headline_ro, w.headline_en, \
     w.instruction_ro, w.instruction_en, w.area, w.category, w.severity, w.actor";

fn into_model(row: WarningRow) -> Result<WarningVersion, StoreError> {
    let (incident, seq, msg, sent, h_ro, h_en, i_ro, i_en, area, category, severity, actor) = row;
    let corrupt = |what: String| StoreError::corrupt(format!("warning {incident}/{seq}: {what}"));
    Ok(WarningVersion {
        seq: u32::try_from(seq).map_err(|_| corrupt(format!("seq {seq}")))?,
        message: msg.parse::<WarningMessage>().map_err(corrupt)?,
        sent,
        text: WarningText {
            headline: Localized { ro: h_ro, en: h_en },
            instruction: Localized { ro: i_ro, en: i_en },
        },
        area: parse_area(&area).ok_or_else(|| corrupt(format!("area {area:?}")))?,
        category: CategoryId::new(category),
        severity: severity.parse().map_err(corrupt)?,
        actor,
        incident: IncidentId::new(incident),
    })
}

impl Store {
    /// Durably records one version of `version.incident`'s public warning and its timeline
    /// entry, in one transaction; returns only after commit. A version number used before is
    /// refused (the primary key), so two writers can never both issue version `n`.
    pub async fn record_warning(
        &self,
        version: &WarningVersion,
        entry: &NewTimelineEntry,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            check_fence!(self, &mut *tx);
            insert_warning!(&mut *tx, version);
            insert_timeline!(&mut *tx, version.incident.as_str(), entry);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every version of `incident`'s public warning, oldest first.
    pub async fn warnings_of(
        &self,
        incident: &IncidentId,
    ) -> Result<Vec<WarningVersion>, StoreError> {
        let rows: Vec<WarningRow> = with_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM public_warnings w WHERE w.incident_id = $1 ORDER BY w.seq"
            ))
            .bind(incident.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(into_model).collect()
    }

    /// Every version of every incident's warning, by incident, then number.
    pub async fn all_warnings(&self) -> Result<Vec<WarningVersion>, StoreError> {
        let rows: Vec<WarningRow> = with_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM public_warnings w ORDER BY w.incident_id, w.seq"
            ))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(into_model).collect()
    }

    /// The latest version of every incident's warning that is active, or was cancelled at or
    /// after `cancelled_since`; newest first.
    pub async fn current_warnings(
        &self,
        cancelled_since: DateTime<Utc>,
    ) -> Result<Vec<WarningVersion>, StoreError> {
        let rows: Vec<WarningRow> = with_pool!(self, |pool| {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM public_warnings w \
                 WHERE w.seq = (SELECT MAX(l.seq) FROM public_warnings l \
                                WHERE l.incident_id = w.incident_id) \
                 AND (w.msg_type <> 'Cancel' OR w.sent >= $1) \
                 ORDER BY w.sent DESC, w.incident_id"
            ))
            .bind(stored_time(cancelled_since))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(into_model).collect()
    }
}

/// The timeline entry of a warning version issued at `at` (to the microsecond, like every
/// timeline entry; the version's `sent` is whole seconds): kind `publish_warning`, `update_warning` or
/// `cancel_warning`, the incident's state unchanged, the version in `detail` (its number, type,
/// texts and area, so the timeline alone tells what the public was told); `automatic` marks
/// the Cancel that resolving or closing the incident issued.
pub fn warning_entry(
    version: &WarningVersion,
    at: DateTime<Utc>,
    status: IncidentStatus,
    reason: Option<String>,
    automatic: bool,
) -> NewTimelineEntry {
    NewTimelineEntry {
        at,
        kind: version.message.action().to_owned(),
        actor: version.actor.clone(),
        reason,
        from: Some(status),
        to: Some(status),
        request_id: None,
        detail: serde_json::json!({
            "seq": version.seq,
            "msg_type": version.message.as_str(),
            "headline": {"ro": version.text.headline.ro, "en": version.text.headline.en},
            "instruction": {"ro": version.text.instruction.ro, "en": version.text.instruction.en},
            "area": serde_json::from_str::<serde_json::Value>(&area_text(&version.area))
                .unwrap_or_default(),
            "automatic": automatic,
        }),
    }
}

/// A warning version's area as [`warning_entry`] writes it in `detail.area`, read back.
pub fn area_of_detail(detail: &serde_json::Value) -> Option<WarningArea> {
    parse_area(&detail.get("area")?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{LineString, Polygon};

    #[test]
    fn areas_round_trip_through_their_column() {
        let circle = WarningArea::Circle {
            center: Point::new(25.5887, 45.6419),
            radius_m: 500.0,
        };
        let square = WarningArea::Polygons(MultiPolygon::new(vec![Polygon::new(
            LineString::from(vec![
                (25.58, 45.63),
                (25.60, 45.63),
                (25.60, 45.65),
                (25.58, 45.63),
            ]),
            Vec::new(),
        )]));
        for area in [circle, square] {
            let text = area_text(&area);
            assert_eq!(parse_area(&text), Some(area), "{text}");
        }
        assert_eq!(parse_area("{\"square\": 1}"), None);
    }
}
