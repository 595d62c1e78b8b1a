// Minting the onboarding kit's sign-in handoff token from a Node.js backend: the function is
// the one in docs/embedding.md, word for word (the test suite checks it).
//
//   npm ci --prefix examples/node
//   HANDOFF_SECRET=... node examples/node/mint.js <user id> <name> <company id> <company name> [role]
//
// prints the URL to send the signed-in user's browser to.

const crypto = require("crypto");
const jwt = require("jsonwebtoken");

function bankConnectionsUrl(userId, name, companyId, companyName, role = "member") {
  const token = jwt.sign(
    {
      sub: userId,
      name,
      tenant: { id: companyId, name: companyName },
      role,
      jti: crypto.randomUUID(),
    },
    process.env.HANDOFF_SECRET,
    { algorithm: "HS256", audience: "waycore-onboarding", expiresIn: 120 },
  );
  const query = new URLSearchParams({ token, next: "/banking/connections" });
  return `https://app.example.com/banking/handoff?${query}`;
}

module.exports = { bankConnectionsUrl };

if (require.main === module) {
  const [userId, name, companyId, companyName, role] = process.argv.slice(2);
  if (!companyName || !process.env.HANDOFF_SECRET) {
    console.error("usage: HANDOFF_SECRET=... node mint.js <user id> <name> <company id> <company name> [role]");
    process.exit(2);
  }
  console.log(bankConnectionsUrl(userId, name, companyId, companyName, role));
}
