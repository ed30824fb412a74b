//! No credential of account A reads or changes anything of account B, by any action or name.

use crate::harness::{ALICE_PW, BOB_PW, TestServer, backends, snapshot};

/// Every action name, current and legacy, with a valid parameter set.
const ALL_ACTIONS: &[&str] = &[
    "action=get_identity",
    "action=account",
    "action=get_account",
    "action=get_aliases",
    "action=aliases",
    "action=add_alias&username=zed",
    "action=delete_alias&username=bob.smith",
    "action=get_enum",
    "action=enum",
    "action=get_history",
    "action=calls",
    "action=get_calls",
    "action=get_devices",
    "action=devices",
    "action=get_prepaid",
    "action=prepaid",
    "action=get_balance_history",
    "action=balance_history",
    "action=get_balance_history&csv=1",
    "action=get_monthly_usage",
    "action=monthly_usage",
    "action=get_call_forwarding",
    "action=diversions",
    "action=get_diversions",
    "action=set_call_forwarding&FUNC=x",
    "action=get_accept_rules",
    "action=rules",
    "action=accept",
    "action=get_accept",
    "action=set_accept_rules&rules=%7B%7D",
    "action=get_reject_rules",
    "action=reject",
    "action=get_reject",
    "action=set_reject_rules&rules=%5B%5D",
    "action=get_voicemail",
    "action=voicemail",
    "action=set_dnd_on&duration=5",
    "action=dnd_on",
    "action=set_dnd_off",
    "action=dnd_off",
    "action=set_privacy_on",
    "action=privacy_on",
    "action=set_privacy_off",
    "action=privacy_off",
    "action=get_journal_entries&summary=1",
    "action=put_journal_entries&uuid=x&data=%5B%7B%22id%22%3A%22a%22%2C%22data%22%3A1%7D%5D",
    "action=delete_journal_entries&data=%5B1%2C2%2C3%5D",
];

#[tokio::test]
async fn alice_cannot_touch_bob() {
    for b in backends() {
        let ts = TestServer::with_fixture(b).await;
        let alice = ts.alice();
        let bob = ts.bob();
        let bob_before = snapshot(&bob).await;
        for q in ALL_ACTIONS {
            // Naming bob's account with alice's credentials: 403.
            for acct in [
                "bob@example.com",
                "bob.smith@example.com",
                "carol@other.org",
            ] {
                let r = alice.get(&format!("{q}&account={acct}")).await;
                assert_eq!(r.status, 403, "{q} account={acct}: {}", r.text);
            }
            // Alice's password as bob, bob's username with alice's password, alice in
            // bob's alias name, alice in another realm: all 401.
            for (u, p, realm) in [
                ("bob", ALICE_PW, "example.com"),
                ("bob.smith", BOB_PW, "example.com"),
                ("alice", ALICE_PW, "other.org"),
                ("carol", ALICE_PW, "other.org"),
            ] {
                let c = ts.client(u, p, realm);
                let r = c.get(q).await;
                assert_eq!(r.status, 401, "{q} as {u}@{realm}: {}", r.text);
            }
            // Alice acting on her own account never shows bob's data.
            let r = alice.get(q).await;
            if q.contains("delete_alias") {
                continue;
            }
            assert!(!r.text.contains("bob.smith@example.com"), "{q}: {}", r.text);
            assert!(!r.text.contains("demo-0-2@"), "{q}: {}", r.text);
        }
        assert_eq!(snapshot(&bob).await, bob_before, "bob's data changed");
        ts.stop().await;
    }
}
