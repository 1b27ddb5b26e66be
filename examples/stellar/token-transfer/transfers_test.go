package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/pkg/sdk"
)

const (
	alice  = "GALICE"
	bob    = "GBOB"
	issuer = "GISSUER"
)

var usdc = &Asset{Type: "credit_alphanum4", Code: "USDC", Issuer: issuer}

// row is the part of a Transfer a case checks.
type row struct{ id, kind, from, to, asset, amount string }

func rowOf(t Transfer) row {
	s := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	return row{t.ID, t.Kind, s(t.From), s(t.To), t.Asset, t.Amount}
}

func TestTransfers(t *testing.T) {
	tx := func(ok bool, ops ...Operation) Transaction {
		return Transaction{Hash: "h", Index: 2, SourceAccount: alice, FeeCharged: 100, Successful: ok, Operations: ops}
	}
	fee := row{"7-2-fee", "fee", alice, "-", "native", "0.0000100"}
	tests := []struct {
		name string
		tx   Transaction
		want []row
	}{
		{"payment in lumens", tx(true, Operation{Index: 0, Type: "payment", To: bob, Asset: &Asset{Type: "native"}, Amount: "12.5"}),
			[]row{fee, {"7-2-0", "transfer", alice, bob, "native", "12.5000000"}}},
		{"issuer pays out: mint", tx(true, Operation{Index: 1, Type: "payment", SourceAccount: issuer, To: bob, Asset: usdc, Amount: "3"}),
			[]row{fee, {"7-2-1", "mint", "-", bob, "USDC:" + issuer, "3.0000000"}}},
		{"paid back to the issuer: burn", tx(true, Operation{Index: 0, Type: "payment", To: issuer, Asset: usdc, Amount: "0.0000001"}),
			[]row{fee, {"7-2-0", "burn", alice, "-", "USDC:" + issuer, "0.0000001"}}},
		{"clawback", tx(true, Operation{Index: 0, Type: "clawback", SourceAccount: issuer, From: bob, Asset: usdc, Amount: "1.25"}),
			[]row{fee, {"7-2-0", "clawback", bob, "-", "USDC:" + issuer, "1.2500000"}}},
		{"create account", tx(true, Operation{Index: 0, Type: "create_account", Destination: bob, StartingBalance: "10"}),
			[]row{fee, {"7-2-0", "transfer", alice, bob, "native", "10.0000000"}}},
		{"account merge moves the result's amount", tx(true, Operation{Index: 0, Type: "account_merge", Destination: bob, Result: &OpResult{Amount: "99.9"}}),
			[]row{fee, {"7-2-0", "transfer", alice, bob, "native", "99.9000000"}}},
		{"operations that move nothing", tx(true, Operation{Index: 0, Type: "change_trust"}, Operation{Index: 1, Type: "manage_data"}),
			[]row{fee}},
		{"a failed transaction still pays its fee", tx(false, Operation{Index: 0, Type: "payment", To: bob, Asset: usdc, Amount: "5"}),
			[]row{fee}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Transfers(&Ledger{Sequence: 7, ClosedAt: "2024-06-01T00:00:00Z", Transactions: []Transaction{tc.tx}})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d transfers, want %d: %+v", len(got), len(tc.want), got)
			}
			for i := range got {
				if r := rowOf(got[i]); r != tc.want[i] {
					t.Errorf("transfer %d = %+v, want %+v", i, r, tc.want[i])
				}
			}
		})
	}
}

func TestTransfersBadShape(t *testing.T) {
	tests := []struct {
		name string
		op   Operation
		want string
	}{
		{"payment without to", Operation{Index: 3, Type: "payment", Asset: usdc, Amount: "1"}, "ledger 7 transaction 1 operation 3 (payment): payment needs to and asset"},
		{"negative amount", Operation{Index: 0, Type: "payment", To: bob, Asset: usdc, Amount: "-1"}, `amount "-1" is not a positive amount`},
		{"zero amount", Operation{Index: 0, Type: "payment", To: bob, Asset: usdc, Amount: "0.0"}, `amount "0.0" is not a positive amount`},
		{"eight decimals", Operation{Index: 0, Type: "payment", To: bob, Asset: usdc, Amount: "1.00000001"}, "at most 7 decimals"},
		{"sign in the decimals", Operation{Index: 0, Type: "payment", To: bob, Asset: usdc, Amount: "1.+5"}, "is not a positive amount"},
		{"clawback by another account", Operation{Index: 0, Type: "clawback", From: bob, Asset: usdc, Amount: "1"}, "clawback by GALICE of an asset issued by GISSUER"},
		{"merge without result", Operation{Index: 0, Type: "account_merge", Destination: bob}, "account_merge needs destination and result.amount"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &Ledger{Sequence: 7, Transactions: []Transaction{{Index: 1, SourceAccount: alice, FeeCharged: 100, Successful: true, Operations: []Operation{tc.op}}}}
			_, err := Transfers(l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestProcessEvents checks the events the processor emits: one per
// transfer, typed by kind, with the ledger's cursor; and that input that
// is not a ledger is a permanent error (a dead letter, not a retry).
func TestProcessEvents(t *testing.T) {
	l := Ledger{Sequence: 9, ClosedAt: "2024-06-01T00:00:05Z", Transactions: []Transaction{{
		Hash: "abc", Index: 4, SourceAccount: alice, FeeCharged: 300, Successful: true,
		Operations: []Operation{{Index: 0, Type: "payment", SourceAccount: issuer, To: bob, Asset: usdc, Amount: "2"}},
	}}}
	in := &sdk.Event{ID: "ledger-9", Source: "ledgers"}
	if err := in.SetJSON(l); err != nil {
		t.Fatal(err)
	}
	out, err := process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("got %d events, want 2", len(out))
	}
	for i, want := range []struct{ id, typ string }{{"9-4-fee", TypePrefix + "fee"}, {"9-4-0", TypePrefix + "mint"}} {
		e := out[i]
		if e.ID != want.id || e.Type != want.typ || e.Metadata["stellar_cursor"] != "9:4" || e.Subject != "abc" || e.Time.IsZero() {
			t.Errorf("event %d = %+v", i, e)
		}
		var tr Transfer
		if err := json.Unmarshal(e.Data, &tr); err != nil || tr.ID != want.id {
			t.Errorf("event %d data %s: %v", i, e.Data, err)
		}
	}

	for _, bad := range []string{`not json`, `{"sequence": 0}`} {
		_, err := process(context.Background(), &sdk.Event{ID: "x", Data: []byte(bad)})
		if !sdk.IsPermanent(err) {
			t.Errorf("%s: error = %v, want a permanent error", bad, err)
		}
	}
}
