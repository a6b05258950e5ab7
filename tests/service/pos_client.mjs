// A small POS client in Node.js (no packages): a sale, a retried completion,
// a refund and a void against `loyalty till serve`. Usage: node pos_client.mjs BASE TOKEN UID
const [base, token, uid] = process.argv.slice(2);
let n = 0;
// Money is {minor, currency}: integer minor units, never a float.
const eur = (minor) => ({ minor, currency: "EUR" });
const text = (money) => `${Math.trunc(money.minor / 100)}.${String(money.minor % 100).padStart(2, "0")} ${money.currency}`;
async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  if (method === "POST") headers["Idempotency-Key"] = `node-${process.pid}-${++n}`;
  const response = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${data.title}: ${data.detail}`);
  return { data, key: headers["Idempotency-Key"] };
}
async function retry(path, body, key) {  // the same request again, as after a lost answer
  const headers = { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Idempotency-Key": key };
  const response = await fetch(base + path, { method: "POST", headers, body: JSON.stringify(body) });
  return response.json();
}
const opened = await call("POST", "/v1/checkouts", {
  lines: [{ sku: "COFFEE", quantity: 2, unit_price: eur(320), category: "coffee" }],
  member: { card_uid: uid },
});
const id = opened.data.checkout_id;
console.log(`quote due ${text(opened.data.quote.due)}, points to earn ${opened.data.quote.points_to_earn}`);
await call("POST", `/v1/checkouts/${id}/wallet`, { amount: eur(140) });
const done = await call("POST", `/v1/checkouts/${id}/complete`, { receipt_ref: "R-N1" });
const again = await retry(`/v1/checkouts/${id}/complete`, { receipt_ref: "R-N1" }, done.key);
if (JSON.stringify(again) !== JSON.stringify(done.data)) throw new Error("a retried completion answered differently");
console.log(`sale R-N1 paid ${text(done.data.to_pay)} at the till, earned ${done.data.points_earned}`);
await call("POST", "/v1/receipts/R-N1/refunds", { refund_ref: "F-N1", lines: { "0": 1 } });
console.log("refund F-N1 ok");
const second = await call("POST", "/v1/checkouts", { lines: [{ sku: "BREAD", quantity: 1, unit_price: eur(250) }] });
await call("POST", `/v1/checkouts/${second.data.checkout_id}/complete`, { receipt_ref: "R-N2" });
await call("POST", "/v1/receipts/R-N2/void");
console.log("void R-N2 ok");
const balance = await call("GET", "/v1/members/M-1/balance");
console.log(`balance ${balance.data.points_posted} points`);
