package main

// The recorded ledgers this processor reads are a JSON rendering of what a
// Stellar ledger close carries, kept to the fields token transfers need:
// one JSON object per ledger, its transactions in application order, each
// with its operations. examples/stellar/mkledgers writes them.

// Ledger is one closed ledger.
type Ledger struct {
	Sequence        uint32        `json:"sequence"`
	Hash            string        `json:"ledger_hash"`
	ClosedAt        string        `json:"closed_at"`
	ProtocolVersion int           `json:"protocol_version"`
	Transactions    []Transaction `json:"transactions"`
}

// Transaction is one transaction of a ledger. Index is 1-based, its place
// in the ledger's apply order.
type Transaction struct {
	Hash          string      `json:"hash"`
	Index         uint32      `json:"index"`
	SourceAccount string      `json:"source_account"`
	FeeCharged    int64       `json:"fee_charged"` // stroops
	Successful    bool        `json:"successful"`
	Operations    []Operation `json:"operations"`
}

// Operation is one operation. Which fields are set depends on Type.
type Operation struct {
	Index int    `json:"index"`
	Type  string `json:"type"`
	// SourceAccount overrides the transaction's source when set.
	SourceAccount string `json:"source_account,omitempty"`

	// payment
	To     string `json:"to,omitempty"`
	Asset  *Asset `json:"asset,omitempty"`
	Amount string `json:"amount,omitempty"`
	// create_account
	Destination     string `json:"destination,omitempty"`
	StartingBalance string `json:"starting_balance,omitempty"`
	// clawback
	From string `json:"from,omitempty"`
	// account_merge: the balance moved, from the operation's result
	Result *OpResult `json:"result,omitempty"`
}

// Asset is native lumens or an asset issued by an account.
type Asset struct {
	Type   string `json:"type"` // native | credit_alphanum4 | credit_alphanum12
	Code   string `json:"code,omitempty"`
	Issuer string `json:"issuer,omitempty"`
}

// OpResult holds what an operation's result says it moved.
type OpResult struct {
	Amount string `json:"amount"`
}
