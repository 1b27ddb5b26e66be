package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Transfer is one movement of value, the row the example stores. Kinds:
//   - transfer: from one account to another;
//   - mint: an issuer pays its own asset out (no from);
//   - burn: an asset is paid back to its issuer (no to);
//   - clawback: an issuer takes its asset back from an account (no to);
//   - fee: the fee a transaction's source paid, charged even when the
//     transaction failed (no to, no operation).
type Transfer struct {
	// ID is the transfer's event id: unique per ledger and the same on
	// every replay, so a sink or a reader can tell a repeat from a new
	// transfer: LEDGER-TX-OP, or LEDGER-TX-fee.
	ID               string  `json:"id"`
	Kind             string  `json:"event_type"`
	LedgerSequence   uint32  `json:"ledger_sequence"`
	ClosedAt         string  `json:"closed_at"`
	TxHash           string  `json:"tx_hash"`
	TransactionIndex uint32  `json:"transaction_index"`
	OperationIndex   *int    `json:"operation_index"`
	From             *string `json:"from"`
	To               *string `json:"to"`
	Asset            string  `json:"asset"`
	Amount           string  `json:"amount"`
	AmountStroops    int64   `json:"amount_stroops"`
}

func (t *Transfer) eventID() string {
	if t.OperationIndex == nil {
		return fmt.Sprintf("%d-%d-fee", t.LedgerSequence, t.TransactionIndex)
	}
	return fmt.Sprintf("%d-%d-%d", t.LedgerSequence, t.TransactionIndex, *t.OperationIndex)
}

// Transfers lists the value movements of a ledger in apply order: each
// transaction's fee, then, if it succeeded, what its operations moved.
// Operations that move nothing (change_trust, manage_data, …) give none.
// A ledger that breaks the shape is an error naming the transaction and
// operation; retrying it cannot help.
func Transfers(l *Ledger) ([]Transfer, error) {
	if l.Sequence == 0 {
		return nil, errors.New("ledger has no sequence")
	}
	var out []Transfer
	for ti := range l.Transactions {
		tx := &l.Transactions[ti]
		base := Transfer{LedgerSequence: l.Sequence, ClosedAt: l.ClosedAt, TxHash: tx.Hash, TransactionIndex: tx.Index}
		if tx.SourceAccount == "" {
			return nil, fmt.Errorf("ledger %d transaction %d: no source_account", l.Sequence, tx.Index)
		}
		fee := base
		fee.Kind, fee.From, fee.Asset = "fee", ptr(tx.SourceAccount), "native"
		fee.Amount, fee.AmountStroops = formatStroops(tx.FeeCharged), tx.FeeCharged
		fee.ID = fee.eventID()
		out = append(out, fee)
		if !tx.Successful {
			continue
		}
		for oi := range tx.Operations {
			op := &tx.Operations[oi]
			t, ok, err := opTransfer(base, tx, op)
			if err != nil {
				return nil, fmt.Errorf("ledger %d transaction %d operation %d (%s): %w", l.Sequence, tx.Index, op.Index, op.Type, err)
			}
			if ok {
				t.ID = t.eventID()
				out = append(out, t)
			}
		}
	}
	return out, nil
}

func opTransfer(t Transfer, tx *Transaction, op *Operation) (Transfer, bool, error) {
	src := op.SourceAccount
	if src == "" {
		src = tx.SourceAccount
	}
	idx := op.Index
	t.OperationIndex = &idx
	var amount string
	switch op.Type {
	case "payment":
		if op.To == "" || op.Asset == nil {
			return t, false, errors.New("payment needs to and asset")
		}
		t.Kind, t.From, t.To, amount = "transfer", ptr(src), ptr(op.To), op.Amount
		switch op.Asset.Issuer {
		case src:
			t.Kind, t.From = "mint", nil
		case op.To:
			t.Kind, t.To = "burn", nil
		}
		t.Asset = assetName(op.Asset)
	case "create_account":
		if op.Destination == "" {
			return t, false, errors.New("create_account needs destination")
		}
		t.Kind, t.From, t.To, t.Asset, amount = "transfer", ptr(src), ptr(op.Destination), "native", op.StartingBalance
	case "account_merge":
		if op.Destination == "" || op.Result == nil {
			return t, false, errors.New("account_merge needs destination and result.amount")
		}
		t.Kind, t.From, t.To, t.Asset, amount = "transfer", ptr(src), ptr(op.Destination), "native", op.Result.Amount
	case "clawback":
		if op.From == "" || op.Asset == nil {
			return t, false, errors.New("clawback needs from and asset")
		}
		if op.Asset.Issuer != src {
			return t, false, fmt.Errorf("clawback by %s of an asset issued by %s", src, op.Asset.Issuer)
		}
		t.Kind, t.From, t.Asset, amount = "clawback", ptr(op.From), assetName(op.Asset), op.Amount
	default:
		return t, false, nil
	}
	stroops, err := parseStroops(amount)
	if err != nil {
		return t, false, err
	}
	t.Amount, t.AmountStroops = formatStroops(stroops), stroops
	return t, true, nil
}

func assetName(a *Asset) string {
	if a.Type == "native" {
		return "native"
	}
	return a.Code + ":" + a.Issuer
}

func ptr(s string) *string { return &s }

// Stellar amounts are whole stroops (10⁻⁷ of a unit), written with up to
// seven decimals.
const stroopsPerUnit = 10_000_000

func parseStroops(s string) (int64, error) {
	bad := fmt.Errorf("amount %q is not a positive amount with at most 7 decimals", s)
	whole, frac, _ := strings.Cut(s, ".")
	if !digits(whole) || len(whole) > 11 || len(frac) > 7 || (frac != "" && !digits(frac)) {
		return 0, bad
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	var f int64
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 7-len(frac)), 10, 64)
	}
	if n := w*stroopsPerUnit + f; n > 0 {
		return n, nil
	}
	return 0, bad
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func formatStroops(n int64) string {
	return fmt.Sprintf("%d.%07d", n/stroopsPerUnit, n%stroopsPerUnit)
}
