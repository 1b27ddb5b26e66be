"""token-transfer: Stellar ledgers in, one event per movement of value out.

A flowctl processor speaking the stdio protocol, in Python with the
standard library only. Each input event is one closed ledger (a line of
data/ledgers.jsonl); for each transaction it emits the fee its source paid
(failed transactions too), then, when the transaction succeeded, what its
operations moved:

  transfer  a payment between accounts, create_account (the starting
            balance), account_merge (the merged balance)
  mint      the issuer pays out its own asset (no from)
  burn      an asset is paid back to its issuer (no to)
  clawback  the issuer takes its asset back (no to)
  fee       every transaction's fee, in native lumens (no to)

Each event's type is stellar.token_transfer.<kind>, its id LEDGER-TX-OP
(LEDGER-TX-fee for a fee), the same on every replay, and its metadata
stellar_cursor is LEDGER:TX. A ledger of the wrong shape is answered with a
permanent error: it goes to the dead letters with the reason.
"""
import json
import sys

TYPE_PREFIX = "stellar.token_transfer."
STROOPS_PER_UNIT = 10_000_000


class BadLedger(Exception):
    """The ledger does not have the expected shape; retrying cannot help."""


def parse_stroops(s):
    """An amount written with at most seven decimals, as whole stroops."""
    whole, _, frac = str(s).partition(".")
    if not whole.isdigit() or len(whole) > 11 or len(frac) > 7 or (frac and not frac.isdigit()):
        raise BadLedger("amount %r is not a positive amount with at most 7 decimals" % s)
    n = int(whole) * STROOPS_PER_UNIT + int((frac or "0").ljust(7, "0"))
    if n <= 0:
        raise BadLedger("amount %r is not a positive amount with at most 7 decimals" % s)
    return n


def format_stroops(n):
    return "%d.%07d" % (n // STROOPS_PER_UNIT, n % STROOPS_PER_UNIT)


def asset_name(asset):
    if asset.get("type") == "native":
        return "native"
    return "%s:%s" % (asset.get("code", ""), asset.get("issuer", ""))


def op_transfer(base, tx, op):
    """The movement of one operation, or None when it moves nothing."""
    src = op.get("source_account") or tx["source_account"]
    t = dict(base, operation_index=op.get("index", 0))
    kind = op.get("type")
    asset = op.get("asset")
    if kind == "payment":
        if not op.get("to") or asset is None:
            raise BadLedger("payment needs to and asset")
        t.update(event_type="transfer", to=op["to"], asset=asset_name(asset))
        t["from"] = src
        if asset.get("issuer") == src:
            t.update(event_type="mint")
            t["from"] = None
        elif asset.get("issuer") == op["to"]:
            t.update(event_type="burn", to=None)
        amount = op.get("amount")
    elif kind == "create_account":
        if not op.get("destination"):
            raise BadLedger("create_account needs destination")
        t.update(event_type="transfer", to=op["destination"], asset="native")
        t["from"] = src
        amount = op.get("starting_balance")
    elif kind == "account_merge":
        if not op.get("destination") or not op.get("result"):
            raise BadLedger("account_merge needs destination and result.amount")
        t.update(event_type="transfer", to=op["destination"], asset="native")
        t["from"] = src
        amount = op["result"].get("amount")
    elif kind == "clawback":
        if not op.get("from") or asset is None:
            raise BadLedger("clawback needs from and asset")
        if asset.get("issuer") != src:
            raise BadLedger("clawback by %s of an asset issued by %s" % (src, asset.get("issuer")))
        t.update(event_type="clawback", asset=asset_name(asset))
        t["from"] = op["from"]
        amount = op.get("amount")
    else:
        return None  # change_trust, manage_data, ...: nothing moves
    stroops = parse_stroops(amount)
    t.update(amount=format_stroops(stroops), amount_stroops=stroops)
    t["id"] = "%d-%d-%d" % (t["ledger_sequence"], t["transaction_index"], t["operation_index"])
    return t


def transfers(ledger):
    """The value movements of a ledger, in apply order."""
    if not isinstance(ledger, dict) or not ledger.get("sequence"):
        raise BadLedger("ledger has no sequence")
    out = []
    for tx in ledger.get("transactions") or []:
        base = {
            "id": "", "event_type": "", "ledger_sequence": ledger["sequence"],
            "closed_at": ledger.get("closed_at", ""), "tx_hash": tx.get("hash", ""),
            "transaction_index": tx.get("index", 0), "operation_index": None,
            "from": None, "to": None, "asset": "", "amount": "", "amount_stroops": 0,
        }
        if not tx.get("source_account"):
            raise BadLedger("ledger %d transaction %d: no source_account" % (ledger["sequence"], base["transaction_index"]))
        fee = int(tx.get("fee_charged", 0))
        out.append(dict(base, id="%d-%d-fee" % (ledger["sequence"], base["transaction_index"]),
                        event_type="fee", asset="native", amount=format_stroops(fee), amount_stroops=fee,
                        **{"from": tx["source_account"]}))
        if not tx.get("successful"):
            continue
        for op in tx.get("operations") or []:
            try:
                t = op_transfer(base, tx, op)
            except BadLedger as e:
                raise BadLedger("ledger %d transaction %d operation %d (%s): %s"
                                % (ledger["sequence"], base["transaction_index"], op.get("index", 0), op.get("type"), e))
            if t is not None:
                out.append(t)
    return out


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        seq, event = msg["seq"], msg.get("event") or {}
        try:
            moved = transfers(event.get("data"))
        except (BadLedger, KeyError, TypeError, ValueError) as e:
            answer({"seq": seq, "error": str(e), "permanent": True})
        else:
            for t in moved:
                answer({"seq": seq, "event": {
                    "id": t["id"],
                    "type": TYPE_PREFIX + t["event_type"],
                    "subject": t["tx_hash"],
                    "time": t["closed_at"],
                    "metadata": {"stellar_cursor": "%d:%d" % (t["ledger_sequence"], t["transaction_index"])},
                    "data": t,
                }})
            answer({"seq": seq, "done": True})
        sys.stdout.flush()


if __name__ == "__main__":
    main()
