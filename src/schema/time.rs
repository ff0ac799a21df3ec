//! The values of the time schemas (DATE, TIME, TIMESTAMP, INSTANT, LOCAL_DATE, LOCAL_TIME,
//! LOCAL_DATE_TIME): small types of their own, each the counterpart of a Java class, so that the
//! crate needs no date library. Each converts to and from `std::time` where that makes sense.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// Milliseconds since the epoch as a signed number, from a `SystemTime` (`None` when it does not
/// fit an `i64`).
fn system_time_to_millis(t: SystemTime) -> Option<i64> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok(),
        Err(e) => {
            // Before the epoch: round towards negative infinity, as Java's `getTime()` does.
            let d = e.duration();
            let ms = i64::try_from(d.as_millis()).ok()?;
            let rem = d.as_nanos() % 1_000_000;
            Some(if rem == 0 { -ms } else { -ms - 1 })
        }
    }
}

fn millis_to_system_time(ms: i64) -> Option<SystemTime> {
    if ms >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_millis(ms as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_millis(ms.unsigned_abs()))
    }
}

macro_rules! millis_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name {
            /// Milliseconds since 1970-01-01T00:00:00Z (negative before).
            pub millis: i64,
        }

        impl $name {
            /// The value `millis` milliseconds after the epoch.
            pub const fn from_millis(millis: i64) -> Self {
                $name { millis }
            }

            /// The time as a `SystemTime` (`None` if the platform cannot represent it).
            pub fn to_system_time(self) -> Option<SystemTime> {
                millis_to_system_time(self.millis)
            }
        }

        impl TryFrom<SystemTime> for $name {
            type Error = TimeRangeError;

            /// Truncates to the millisecond (towards the past, as Java does).
            fn try_from(t: SystemTime) -> Result<Self, TimeRangeError> {
                system_time_to_millis(t)
                    .map(Self::from_millis)
                    .ok_or(TimeRangeError)
            }
        }
    };
}

millis_type!(
    /// A DATE value: the Java client's `java.util.Date` (`Date.getTime()`: milliseconds since
    /// the epoch).
    Date
);
millis_type!(
    /// A TIME value: the Java client's `java.sql.Time` (`Time.getTime()`: milliseconds since
    /// the epoch; a time of day is a value on 1970-01-01).
    Time
);
millis_type!(
    /// A TIMESTAMP value: the Java client's `java.sql.Timestamp` (`Timestamp.getTime()`:
    /// milliseconds since the epoch; the Java schema drops the nanoseconds below the
    /// millisecond).
    Timestamp
);

/// A time value does not fit the type it is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the time is out of the representable range")]
pub struct TimeRangeError;

/// An INSTANT value: the Java client's `java.time.Instant`, seconds since the epoch and the
/// nanoseconds within the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Instant {
    secs: i64,
    nanos: u32,
}

impl Instant {
    /// Java's bounds (`Instant.MIN`, `Instant.MAX`): years -1000000000 and 1000000000.
    const MIN_SECOND: i64 = -31_557_014_167_219_200;
    const MAX_SECOND: i64 = 31_556_889_864_403_199;

    /// The instant `secs` seconds and `nanos` nanoseconds after the epoch, normalized as Java's
    /// `Instant.ofEpochSecond(secs, nanos)` does (any `nanos`, carried into the seconds). `None`
    /// outside Java's range.
    pub fn new(secs: i64, nanos: i64) -> Option<Self> {
        let secs = secs.checked_add(nanos.div_euclid(NANOS_PER_SECOND))?;
        let nanos = nanos.rem_euclid(NANOS_PER_SECOND) as u32;
        if !(Self::MIN_SECOND..=Self::MAX_SECOND).contains(&secs) {
            return None;
        }
        Some(Instant { secs, nanos })
    }

    /// Seconds since the epoch (Java's `getEpochSecond()`).
    pub fn epoch_second(self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second, 0 to 999,999,999 (Java's `getNano()`).
    pub fn nano(self) -> u32 {
        self.nanos
    }

    /// The instant as a `SystemTime` (`None` if the platform cannot represent it).
    pub fn to_system_time(self) -> Option<SystemTime> {
        if self.secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::new(self.secs as u64, self.nanos))
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(Duration::from_nanos(u64::from(self.nanos)))
        }
    }
}

impl TryFrom<SystemTime> for Instant {
    type Error = TimeRangeError;

    fn try_from(t: SystemTime) -> Result<Self, TimeRangeError> {
        let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).map_err(|_| TimeRangeError)?,
                i64::from(d.subsec_nanos()),
            ),
            Err(e) => {
                let d = e.duration();
                (
                    -i64::try_from(d.as_secs()).map_err(|_| TimeRangeError)?,
                    -i64::from(d.subsec_nanos()),
                )
            }
        };
        Instant::new(secs, nanos).ok_or(TimeRangeError)
    }
}

/// A LOCAL_DATE value: the Java client's `java.time.LocalDate` (`toEpochDay()`: days since
/// 1970-01-01), a date without a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LocalDate {
    epoch_day: i64,
}

impl LocalDate {
    /// Java's bounds (`LocalDate.MIN`, `LocalDate.MAX`: years -999999999 and 999999999).
    const MIN_EPOCH_DAY: i64 = -365_243_219_162;
    const MAX_EPOCH_DAY: i64 = 365_241_780_471;

    /// The date `epoch_day` days after 1970-01-01 (`None` outside Java's range, where
    /// `LocalDate.ofEpochDay` throws).
    pub fn from_epoch_day(epoch_day: i64) -> Option<Self> {
        (Self::MIN_EPOCH_DAY..=Self::MAX_EPOCH_DAY)
            .contains(&epoch_day)
            .then_some(LocalDate { epoch_day })
    }

    /// Days since 1970-01-01.
    pub fn epoch_day(self) -> i64 {
        self.epoch_day
    }

    /// The date of a proleptic Gregorian year, month (1-12) and day (1-31); `None` if there is
    /// no such day.
    pub fn from_ymd(year: i64, month: u32, day: u32) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        // Days from civil (H. Hinnant's algorithm).
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let m = i64::from(month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Self::from_epoch_day(era * 146_097 + doe - 719_468)
    }

    /// The year, month (1-12) and day (1-31).
    pub fn to_ymd(self) -> (i64, u32, u32) {
        let z = self.epoch_day + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// A LOCAL_TIME value: the Java client's `java.time.LocalTime` (`toNanoOfDay()`), a time of
/// day without a time zone, to the nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LocalTime {
    nano_of_day: u64,
}

impl LocalTime {
    /// The time `nano_of_day` nanoseconds after midnight (`None` from 24:00 on, where Java's
    /// `LocalTime.ofNanoOfDay` throws).
    pub fn from_nano_of_day(nano_of_day: u64) -> Option<Self> {
        (nano_of_day < NANOS_PER_DAY).then_some(LocalTime { nano_of_day })
    }

    /// The time of an hour (0-23), minute, second and nanosecond.
    pub fn from_hms_nano(hour: u32, minute: u32, second: u32, nano: u32) -> Option<Self> {
        if hour > 23 || minute > 59 || second > 59 || nano > 999_999_999 {
            return None;
        }
        let secs = u64::from(hour) * 3600 + u64::from(minute) * 60 + u64::from(second);
        Self::from_nano_of_day(secs * 1_000_000_000 + u64::from(nano))
    }

    /// Nanoseconds since midnight.
    pub fn nano_of_day(self) -> u64 {
        self.nano_of_day
    }

    /// The time since midnight.
    pub fn to_duration(self) -> Duration {
        Duration::from_nanos(self.nano_of_day)
    }
}

impl TryFrom<Duration> for LocalTime {
    type Error = TimeRangeError;

    /// The time this long after midnight (less than a day).
    fn try_from(d: Duration) -> Result<Self, TimeRangeError> {
        u64::try_from(d.as_nanos())
            .ok()
            .and_then(LocalTime::from_nano_of_day)
            .ok_or(TimeRangeError)
    }
}

/// A LOCAL_DATE_TIME value: the Java client's `java.time.LocalDateTime`, a date and a time of
/// day without a time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LocalDateTime {
    /// The date.
    pub date: LocalDate,
    /// The time of day.
    pub time: LocalTime,
}

impl LocalDateTime {
    /// The date and time.
    pub fn new(date: LocalDate, time: LocalTime) -> Self {
        LocalDateTime { date, time }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_and_match_known_days() {
        assert_eq!(LocalDate::from_ymd(1970, 1, 1).unwrap().epoch_day(), 0);
        assert_eq!(LocalDate::from_ymd(2000, 3, 1).unwrap().epoch_day(), 11_017);
        assert_eq!(LocalDate::from_ymd(1969, 12, 31).unwrap().epoch_day(), -1);
        assert_eq!(LocalDate::from_ymd(2024, 2, 30), None);
        assert_eq!(LocalDate::from_ymd(2023, 13, 1), None);
        for day in [-800_000i64, -1, 0, 59, 60, 11_016, 19_782, 2_932_896] {
            let d = LocalDate::from_epoch_day(day).unwrap();
            let (y, m, dd) = d.to_ymd();
            assert_eq!(LocalDate::from_ymd(y, m, dd), Some(d), "{day}");
        }
        assert_eq!(
            LocalDate::from_epoch_day(LocalDate::MAX_EPOCH_DAY + 1),
            None
        );
    }

    #[test]
    fn instants_normalize_like_java_and_convert() {
        let i = Instant::new(10, -1).unwrap();
        assert_eq!((i.epoch_second(), i.nano()), (9, 999_999_999));
        assert_eq!(Instant::new(i64::MAX, 0), None);
        let t = UNIX_EPOCH - Duration::new(5, 250);
        let i = Instant::try_from(t).unwrap();
        assert_eq!((i.epoch_second(), i.nano()), (-6, 999_999_750));
        assert_eq!(i.to_system_time(), Some(t));
        let d = Date::try_from(UNIX_EPOCH - Duration::from_micros(1500)).unwrap();
        assert_eq!(d.millis, -2);
        assert_eq!(
            Date::from_millis(1234).to_system_time(),
            Some(UNIX_EPOCH + Duration::from_millis(1234))
        );
        assert_eq!(
            LocalTime::from_hms_nano(23, 59, 59, 999_999_999)
                .unwrap()
                .nano_of_day(),
            NANOS_PER_DAY - 1
        );
        assert!(LocalTime::try_from(Duration::from_secs(86_400)).is_err());
    }
}
