package wasmguest

import (
	"encoding/json"
	"reflect"
	"testing"
)

var fastLines = []string{
	`{"id":"ledger:42","type":"ledger","source":"ledger","subject":"x","metadata":{"k":"v","a":"b"},"data":{"amount":5000}}`,
	`{"id":"1","type":"t","source":"s","data":{"id":1,"ts":"2026-01-01T00:00:00Z","amount":-12.5e+3,"ok":true,"n":null,"l":[1,[],{}]}}`,
	` { "id" : "1" , "data" : [ 1 , 2 ] } `,
	`{}`,
	`{"data":null,"id":null,"metadata":null}`,
	`{"data":"a\"b\\c\u00e9\n"}`,
	`{"data":"<&>"}`,
	`{"data":"é"}`,
	`{"id":"é","data":1}`,
	`{"id":"a\nb","data":1}`,
	`{"ID":"upper","data":1}`,
	`{"Data":1}`,
	`{"extra":{"x":[1,2]},"data":0}`,
	`{"id":5,"data":1}`,
	`{"metadata":{"k":1}}`,
	`{"metadata":{"k":"v"},"metadata":{"j":"w"}}`,
	`{"data":1}x`,
	`{"data":01}`,
	`{"data":1.}`,
	`{"data":-}`,
	`{"data":tru}`,
	`{"data":"\x"}`,
	`{"data":[1,]}`,
	`{"data":{"a"}}`,
	`{oops`,
	`[1]`,
	`{"data":1,}`,
	`{"data":1`,
}

// TestReadEventMatchesEncodingJSON: whatever readEvent accepts, it reads
// as json.Unmarshal does.
func TestReadEventMatchesEncodingJSON(t *testing.T) {
	fast := 0
	for _, line := range fastLines {
		var got Event
		if !readEvent([]byte(line), &got) {
			continue
		}
		fast++
		var want Event
		if err := json.Unmarshal([]byte(line), &want); err != nil {
			t.Errorf("%s: readEvent took it, json.Unmarshal says %v", line, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", line, got, want)
		}
	}
	if fast < 6 {
		t.Errorf("readEvent took only %d lines: the fast path is not used", fast)
	}
}

// TestAppendFastResultMatchesMarshal: whatever appendFastResult writes is
// json.Marshal's text.
func TestAppendFastResultMatchesMarshal(t *testing.T) {
	results := []result{
		{Events: []Event{}},
		{Error: "bad event"},
		{Error: `say "no"`},
		{Events: []Event{{Data: json.RawMessage(`{"a":1,"b":[true,null,"x"]}`)}, {ID: "2", Type: "t", Source: "s", Subject: "u", Metadata: map[string]string{"z": "1", "a": "2"}}}},
		{Events: []Event{{Data: json.RawMessage(`{"a": 1}`)}}},
		{Events: []Event{{Data: json.RawMessage(`"<b>"`)}}},
		{Events: []Event{{Data: json.RawMessage(`"é"`)}}},
		{Events: []Event{{Type: "é"}}},
		{Events: []Event{{Metadata: map[string]string{}}}},
		{Events: []Event{{Data: json.RawMessage(`{bad`)}}},
	}
	fast := 0
	for _, r := range results {
		got, ok := appendFastResult([]byte("prefix"), &r)
		if !ok {
			if string(got) != "prefix" {
				t.Errorf("%+v: declined but left %q", r, got)
			}
			continue
		}
		fast++
		want, err := json.Marshal(r)
		if err != nil {
			t.Errorf("%+v: written fast, json.Marshal says %v", r, err)
			continue
		}
		if string(got) != "prefix"+string(want) {
			t.Errorf("%+v:\n got %s\nwant prefix%s", r, got, want)
		}
	}
	if fast < 4 {
		t.Errorf("appendFastResult wrote only %d results", fast)
	}
}

func FuzzReadEvent(f *testing.F) {
	for _, l := range fastLines {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var got Event
		if !readEvent([]byte(line), &got) {
			return
		}
		var want Event
		if err := json.Unmarshal([]byte(line), &want); err != nil {
			t.Fatalf("%q: readEvent took it, json.Unmarshal says %v", line, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", line, got, want)
		}
	})
}
