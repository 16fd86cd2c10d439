//! Random lifecycles through HTTP, shared by the tests that check what they
//! leave behind: Zenofy subscriptions over two products (moving between
//! customers, duplicates, stale and late events), grants given and revoked,
//! ZayPay orders paid before or after registration and sometimes refunded,
//! policy changes, the clock and replays. The same seed makes the same run.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Reply, SECRET, TestApp, fixture_json};
use entitled::domain::Instant;
use entitled::time_fmt;

/// A small deterministic generator (xorshift64*): the same run every time.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An instant within `days` of `now`, either side, whole seconds.
    pub fn around(&mut self, now: Instant, days: i64) -> Instant {
        let seconds = (self.next() % (2 * days as u64 * 86_400)) as i64 - days * 86_400;
        time_fmt::truncate(now + time::Duration::seconds(seconds))
    }
}

pub const CUSTOMERS: [&str; 5] = [
    "ada@example.com",
    "bo@example.com",
    "cy@example.com",
    "di@example.com",
    "ed@example.com",
];
pub const PRODUCTS: [&str; 2] = ["pro", "team"];
pub const ZENOFY_PRODUCTS: [(&str, &str); 2] = [
    ("507f1f77bcf86cd799439011", "pro"),
    ("507f1f77bcf86cd799439012", "team"),
];
pub const ZAYPAY_TOKEN: &str = "zaypay-url-token-0123456789";

pub fn zenofy_event(rng: &mut Rng, now: Instant, subscription: &str, email: &str) -> Vec<u8> {
    let events = [
        "subscription.created",
        "subscription.activated",
        "subscription.renewed",
        "subscription.suspended",
        "subscription.canceled",
        "subscription.expired",
    ];
    let mut body = fixture_json(&format!("zenofy/{}.json", rng.pick(&events)));
    let start = rng.around(now, 40);
    let end = start + time::Duration::days(1 + rng.below(40) as i64);
    body["subscriptionId"] = json!(subscription);
    body["customerEmail"] = json!(email);
    body["productId"] = json!(rng.pick(&ZENOFY_PRODUCTS).0);
    body["currentPeriodStart"] = json!(time_fmt::rfc3339(start));
    body["currentPeriodEnd"] = json!(time_fmt::rfc3339(end));
    serde_json::to_vec(&body).unwrap()
}

/// A Zenofy activation of `product_id` for `email`, its period from
/// `start_days` to `end_days` from now.
pub fn activation(
    subscription: &str,
    email: &str,
    product_id: &str,
    start_days: i64,
    end_days: i64,
) -> Vec<u8> {
    let now = time_fmt::truncate(time_fmt::now());
    let mut body = fixture_json("zenofy/subscription.activated.json");
    body["subscriptionId"] = json!(subscription);
    body["customerEmail"] = json!(email);
    body["productId"] = json!(product_id);
    body["currentPeriodStart"] = json!(time_fmt::rfc3339(now + time::Duration::days(start_days)));
    body["currentPeriodEnd"] = json!(time_fmt::rfc3339(now + time::Duration::days(end_days)));
    serde_json::to_vec(&body).unwrap()
}

/// A ZayPay fixture (named by status) for another order id.
pub fn zaypay_event(status: &str, order: &str) -> Vec<u8> {
    let mut body = fixture_json(&format!("zaypay/{status}.json"));
    body["subject_id"] = json!(order);
    body["payload"]["order"]["id"] = json!(order);
    serde_json::to_vec(&body).unwrap()
}

/// A run in progress.
pub struct Lifecycle {
    pub rng: Rng,
    pub now: Instant,
    subscriptions: Vec<String>,
    owner: Vec<&'static str>,
    sent: Vec<Vec<u8>>,
    grants: Vec<String>,
    orders: usize,
    /// Every delivery answered with an id: what a replay picks from.
    deliveries: Vec<String>,
}

impl Lifecycle {
    /// Configures the Zenofy and ZayPay integrations and starts a run.
    pub async fn start(app: &TestApp, seed: u64) -> Self {
        let product_map: serde_json::Map<String, Value> = ZENOFY_PRODUCTS
            .iter()
            .map(|(id, key)| ((*id).to_owned(), json!(key)))
            .collect();
        for (id, body) in [
            (
                "zenofy",
                json!({"provider": "zenofy", "secret": SECRET, "product_map": product_map}),
            ),
            (
                "zaypay",
                json!({"provider": "zaypay", "secret": ZAYPAY_TOKEN}),
            ),
        ] {
            let reply = app
                .admin(
                    Method::PUT,
                    &format!("/v1/admin/integrations/{id}"),
                    Some(body),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        }
        let mut rng = Rng(seed);
        let subscriptions: Vec<String> = (0..6).map(|i| format!("sub-{i}")).collect();
        let owner = subscriptions
            .iter()
            .map(|_| *rng.pick(&CUSTOMERS))
            .collect();
        Self {
            rng,
            now: time_fmt::truncate(time_fmt::now()),
            subscriptions,
            owner,
            sent: Vec::new(),
            grants: Vec::new(),
            orders: 0,
            deliveries: Vec::new(),
        }
    }

    fn record(&mut self, reply: &Reply) {
        if let Some(id) = reply.body["delivery_id"].as_str() {
            self.deliveries.push(id.to_owned());
        }
    }

    /// One random step.
    pub async fn step(&mut self, app: &TestApp) {
        match self.rng.below(12) {
            // A fresh event (sometimes for another customer: the subscription moves).
            0..=3 => {
                let i = self.rng.below(self.subscriptions.len());
                if self.rng.below(8) == 0 {
                    self.owner[i] = *self.rng.pick(&CUSTOMERS);
                }
                let body = zenofy_event(
                    &mut self.rng,
                    self.now,
                    &self.subscriptions[i],
                    self.owner[i],
                );
                let reply = app.zenofy(body.clone()).await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
                self.record(&reply);
                self.sent.push(body);
            }
            // An earlier delivery again: a duplicate, or one arriving late.
            4 if !self.sent.is_empty() => {
                let body = self.rng.pick(&self.sent).clone();
                let reply = app.zenofy(body).await;
                assert!(reply.status.is_success(), "{:?}", reply.body);
            }
            5 => {
                let from = self.rng.around(self.now, 20);
                let mut grant = json!({
                    "email": self.rng.pick(&CUSTOMERS),
                    "product": self.rng.pick(&PRODUCTS),
                    "valid_from": time_fmt::rfc3339(from),
                    "reason": "support",
                });
                if self.rng.below(2) == 0 {
                    grant["valid_until"] = json!(time_fmt::rfc3339(
                        from + time::Duration::days(1 + self.rng.below(30) as i64)
                    ));
                }
                let reply = app
                    .admin(Method::POST, "/v1/admin/grants", Some(grant))
                    .await;
                assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
                self.grants
                    .push(reply.body["id"].as_str().unwrap().to_owned());
            }
            6 if !self.grants.is_empty() => {
                let id = self.rng.pick(&self.grants).clone();
                let reply = app
                    .admin(Method::DELETE, &format!("/v1/admin/grants/{id}"), None)
                    .await;
                assert!(reply.status.is_success(), "{:?}", reply.body);
            }
            7 => {
                let policy = json!({
                    "grace_period_seconds": *self.rng.pick(&[0, 3600, 259_200, 864_000]),
                    "suspended_access": self.rng.below(2) == 0,
                    "canceled_access": *self.rng.pick(&["immediate", "period_end"]),
                    "purchase_access_seconds": *self.rng.pick(&[None, Some(86_400), Some(2_592_000)]),
                });
                let product = self.rng.pick(&PRODUCTS);
                let reply = app
                    .admin(
                        Method::PUT,
                        &format!("/v1/admin/products/{product}"),
                        Some(policy),
                    )
                    .await;
                assert!(reply.status.is_success(), "{:?}", reply.body);
            }
            // An order paid before or after its registration, sometimes refunded.
            8 => {
                self.orders += 1;
                let order = format!("zp-order-{}", self.orders);
                let register = json!({"integration": "zaypay", "external_id": order,
                    "email": self.rng.pick(&CUSTOMERS), "product": self.rng.pick(&PRODUCTS)});
                let pay_first = self.rng.below(2) == 0;
                if pay_first {
                    zaypay(app, zaypay_event("completed", &order)).await;
                }
                let reply = app.admin(Method::POST, "/v1/orders", Some(register)).await;
                assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
                if !pay_first {
                    zaypay(app, zaypay_event("completed", &order)).await;
                }
                if self.rng.below(3) == 0 {
                    zaypay(app, zaypay_event("refund_completed", &order)).await;
                }
            }
            9 => {
                app.store.expire_lapsed(time_fmt::now()).await.unwrap();
            }
            // An operator replays a delivery.
            10 if !self.deliveries.is_empty() => {
                let id = self.rng.pick(&self.deliveries).clone();
                let reply = app
                    .admin(
                        Method::POST,
                        &format!("/v1/admin/deliveries/{id}/replay"),
                        None,
                    )
                    .await;
                assert!(reply.status.is_success(), "{:?}", reply.body);
            }
            _ => {}
        }
    }
}

pub async fn zaypay(app: &TestApp, body: Vec<u8>) {
    let reply = app
        .webhook(
            &format!("/v1/webhooks/zaypay?token={ZAYPAY_TOKEN}"),
            &[("content-type", "application/json")],
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}
