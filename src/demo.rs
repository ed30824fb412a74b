//! `serve --demo`: a realistic account so every read action has something to show.

use serde_json::json;

use crate::domain::{Account, CallRecord, NewAccount, Registration};
use crate::error::ServiceResult;
use crate::service::{NewVoicemail, Services};
use crate::util::now;

pub const DEMO_DOMAIN: &str = "example.com";
pub const DEMO_USER: &str = "alice";

/// Creates `example.com` (if missing) and `alice@example.com` with `password`, plus sample data.
pub async fn seed(s: &Services, password: &str) -> ServiceResult<Account> {
    if !s.serves_domain(DEMO_DOMAIN).await? {
        s.add_domain(DEMO_DOMAIN).await?;
    }
    let alice = s
        .add_account(
            NewAccount {
                username: DEMO_USER.into(),
                domain: DEMO_DOMAIN.into(),
                first_name: Some("Alice".into()),
                last_name: Some("Smith".into()),
                email: Some("alice@mail.example".into()),
                timezone: Some("Europe/Amsterdam".into()),
                mobile_number: Some("+31612345678".into()),
                pstn_caller_id: Some("+31201234567".into()),
                customer_id: None,
            },
            password,
        )
        .await?;
    seed_data(s, &alice).await?;
    s.find_account(&alice.address()).await
}

/// Sample data for an existing account (also used by the test suite).
pub async fn seed_data(s: &Services, a: &Account) -> ServiceResult<()> {
    let now = now();
    s.add_alias(a, Some(&format!("{}.smith", a.username)))
        .await?;
    s.add_alias(a, Some(&format!("{}1", a.username))).await?;
    for n in [
        format!("+3120{:07}", a.id % 10_000_000),
        format!("+3185{:07}", a.id % 10_000_000),
    ] {
        s.add_enum_number(a, &n).await?;
    }
    s.apply_balance(
        a,
        100_000,
        "CC transaction 1001",
        None,
        Some(now - 86_400 * 3),
    )
    .await?;
    let calls = [
        (
            "placed",
            "sip:bob@example.com",
            "",
            3_600,
            300,
            "200",
            Some(400),
        ),
        (
            "placed",
            "sip:+31201234567@example.com",
            "",
            7_200,
            0,
            "487",
            None,
        ),
        (
            "placed",
            "sip:carol@example.org",
            "",
            86_400 * 2,
            62,
            "200",
            Some(124),
        ),
        (
            "received",
            "sip:carol@example.org",
            "Carol",
            5_400,
            120,
            "200",
            None,
        ),
        (
            "received",
            "sip:dave@example.net",
            "Dave",
            86_400,
            0,
            "487",
            None,
        ),
    ];
    for (i, (dir, remote, display, ago, dur, status, price)) in calls.into_iter().enumerate() {
        let start = now - ago;
        s.record_call(
            a,
            CallRecord {
                id: 0,
                account_id: a.id,
                direction: dir.into(),
                remote_party: remote.into(),
                display_name: display.into(),
                start_time: start,
                stop_time: Some(start + dur),
                duration: dur,
                status: status.into(),
                price,
                session_id: format!("demo-{i}-{}@sipsettings", a.id),
                from_tag: format!("ft{i}"),
                to_tag: format!("tt{i}"),
                proxy_ip: "10.0.0.1".into(),
                media: "audio".into(),
            },
        )
        .await?;
    }
    // One call still in progress: shown by get_prepaid, left out of get_history.
    s.record_call(
        a,
        CallRecord {
            id: 0,
            account_id: a.id,
            direction: "placed".into(),
            remote_party: "sip:erin@example.com".into(),
            display_name: String::new(),
            start_time: now - 60,
            stop_time: None,
            duration: 0,
            status: "200".into(),
            price: None,
            session_id: format!("demo-active-{}@sipsettings", a.id),
            from_tag: "fta".into(),
            to_tag: "tta".into(),
            proxy_ip: "10.0.0.1".into(),
            media: "audio,video".into(),
        },
    )
    .await?;
    s.upsert_registration(
        a,
        &Registration {
            contact: "192.168.1.10:5060".into(),
            public_contact: Some("80.1.2.3:34567".into()),
            expires_at: now + 3_600,
            user_agent: Some("Blink 5.1.0 (MacOSX)".into()),
            transport: Some("tls".into()),
            instance_id: Some("urn:uuid:00000000-0000-0000-0000-000000000001".into()),
        },
    )
    .await?;
    s.upsert_registration(
        a,
        &Registration {
            contact: "10.0.0.7:5062".into(),
            public_contact: None,
            expires_at: now + 600,
            user_agent: Some("Blink 6.0 (Linux)".into()),
            transport: Some("udp".into()),
            instance_id: None,
        },
    )
    .await?;
    s.set_voicemail(
        a,
        NewVoicemail {
            mailbox: format!("{}", 1000 + a.id),
            password: "9876".into(),
            name: Some("Alice Smith".into()),
            email: a.email.clone(),
            info: None,
            delete_after_email: true,
            vm_account: format!("{}@vm.{}", 1000 + a.id, a.domain),
        },
    )
    .await?;
    s.add_phonebook_entry(a, "sip:bob@example.com", "Bob", "family")
        .await?;
    s.add_phonebook_entry(a, "sip:carol@example.org", "Carol", "vip")
        .await?;
    s.set_accept_rules(
        a,
        &json!({"persistent": {"31": {"start": "09:00", "stop": "17:00", "groups": ["everybody"]},
                               "96": {"start": "10:00", "stop": "12:00", "groups": ["vip", "family"]}}}),
    )
    .await?;
    s.set_reject_rules(a, &json!(["sip:spam@example.com", "sip:%0900@%"]))
        .await?;
    s.set_call_forwarding(
        a,
        &[
            (crate::domain::Forwarding::Fnol, "<voice-mailbox>".into()),
            (crate::domain::Forwarding::Fbus, "<mobile-number>".into()),
        ],
    )
    .await?;
    Ok(())
}
