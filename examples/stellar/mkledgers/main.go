// Command mkledgers writes the recorded ledgers of the Stellar example:
// ledgers in the shape of real Stellar ledger closes (account ids as real
// G… strkeys, 64-hex hashes, amounts in stroops written with seven
// decimals), made up by a seeded generator so the file is the same on
// every run. From the repository root:
//
//	go run ./examples/stellar/mkledgers > examples/stellar/ledgers.jsonl
//
// The example's test checks that the committed file is what this writes.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"time"
)

func main() {
	n := flag.Int("ledgers", 60, "how many ledgers to write")
	first := flag.Uint("first", 52_000_001, "the first ledger's sequence")
	flag.Parse()
	w := bufio.NewWriter(os.Stdout)
	if err := write(w, *n, uint32(*first)); err != nil {
		log.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
}

type asset struct {
	Type   string `json:"type"`
	Code   string `json:"code,omitempty"`
	Issuer string `json:"issuer,omitempty"`
}

type op struct {
	Index           int            `json:"index"`
	Type            string         `json:"type"`
	SourceAccount   string         `json:"source_account,omitempty"`
	To              string         `json:"to,omitempty"`
	Asset           *asset         `json:"asset,omitempty"`
	Amount          string         `json:"amount,omitempty"`
	Destination     string         `json:"destination,omitempty"`
	StartingBalance string         `json:"starting_balance,omitempty"`
	From            string         `json:"from,omitempty"`
	Line            *asset         `json:"line,omitempty"`
	Name            string         `json:"name,omitempty"`
	Result          map[string]any `json:"result,omitempty"`
}

type tx struct {
	Hash          string `json:"hash"`
	Index         int    `json:"index"`
	SourceAccount string `json:"source_account"`
	FeeCharged    int64  `json:"fee_charged"`
	Successful    bool   `json:"successful"`
	Operations    []op   `json:"operations"`
}

type ledger struct {
	Sequence        uint32 `json:"sequence"`
	Hash            string `json:"ledger_hash"`
	ClosedAt        string `json:"closed_at"`
	ProtocolVersion int    `json:"protocol_version"`
	Transactions    []tx   `json:"transactions"`
}

func write(w *bufio.Writer, n int, first uint32) error {
	r := rand.New(rand.NewPCG(2026, 12))
	account := func() string {
		var key [32]byte
		for i := range key {
			key[i] = byte(r.UintN(256))
		}
		return strkey(key)
	}
	usdc := asset{Type: "credit_alphanum4", Code: "USDC", Issuer: account()}
	eurc := asset{Type: "credit_alphanum4", Code: "EURC", Issuer: account()}
	native := asset{Type: "native"}
	accounts := make([]string, 10)
	for i := range accounts {
		accounts[i] = account()
	}
	pick := func() string { return accounts[r.IntN(len(accounts))] }
	amount := func(maxUnits int) string {
		return fmt.Sprintf("%d.%07d", r.IntN(maxUnits), 1+r.IntN(9_999_999))
	}
	closed := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	prev := sha256.Sum256([]byte("genesis"))
	for i := range n {
		closed = closed.Add(time.Duration(5000+r.IntN(1500)) * time.Millisecond)
		l := ledger{Sequence: first + uint32(i), ClosedAt: closed.Format(time.RFC3339), ProtocolVersion: 21, Transactions: []tx{}}
		for t := range r.IntN(6) {
			src := pick()
			x := tx{Index: t + 1, SourceAccount: src, FeeCharged: int64(100 * (1 + r.IntN(3))), Successful: r.IntN(10) != 0}
			for o := range 1 + r.IntN(3) {
				x.Operations = append(x.Operations, operation(r, o, src, pick, amount, &usdc, &eurc, &native))
			}
			h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%s", l.Sequence, t, src))
			x.Hash = fmt.Sprintf("%x", h)
			l.Transactions = append(l.Transactions, x)
		}
		prev = sha256.Sum256(fmt.Appendf(prev[:], "%d", l.Sequence))
		l.Hash = fmt.Sprintf("%x", prev)
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		w.Write(b)
		w.WriteByte('\n')
	}
	return nil
}

func operation(r *rand.Rand, i int, src string, pick func() string, amount func(int) string, usdc, eurc, native *asset) op {
	issued := usdc
	if r.IntN(3) == 0 {
		issued = eurc
	}
	switch k := r.IntN(100); {
	case k < 45: // payment between accounts, in lumens or an issued asset
		a := native
		if r.IntN(2) == 0 {
			a = issued
		}
		to := pick()
		for to == src {
			to = pick()
		}
		return op{Index: i, Type: "payment", To: to, Asset: a, Amount: amount(500)}
	case k < 55: // the issuer pays its asset out: a mint
		return op{Index: i, Type: "payment", SourceAccount: issued.Issuer, To: pick(), Asset: issued, Amount: amount(10_000)}
	case k < 62: // paid back to the issuer: a burn
		return op{Index: i, Type: "payment", To: issued.Issuer, Asset: issued, Amount: amount(100)}
	case k < 67:
		return op{Index: i, Type: "clawback", SourceAccount: issued.Issuer, From: pick(), Asset: issued, Amount: amount(50)}
	case k < 77:
		return op{Index: i, Type: "create_account", Destination: strkeyFrom(r), StartingBalance: fmt.Sprintf("%d.0000000", 1+r.IntN(100))}
	case k < 80:
		return op{Index: i, Type: "account_merge", Destination: pick(), Result: map[string]any{"amount": amount(200)}}
	case k < 92:
		return op{Index: i, Type: "change_trust", Line: issued}
	default:
		return op{Index: i, Type: "manage_data", Name: fmt.Sprintf("note-%d", r.IntN(1000))}
	}
}

func strkeyFrom(r *rand.Rand) string {
	var key [32]byte
	for i := range key {
		key[i] = byte(r.UintN(256))
	}
	return strkey(key)
}

// strkey writes an ed25519 public key the way Stellar shows account ids:
// version byte 6<<3 ('G'), the key, a CRC-16/XMODEM checksum little-endian,
// all in unpadded base32.
func strkey(key [32]byte) string {
	b := make([]byte, 0, 35)
	b = append(b, 6<<3)
	b = append(b, key[:]...)
	b = binary.LittleEndian.AppendUint16(b, crc16(b))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
