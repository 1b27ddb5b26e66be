package backoff

import (
	"slices"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestCeiling(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Policy
		want []time.Duration // ceilings of failures 1..len
	}{
		{"doubles to the cap", Policy{Base: 100 * ms, Max: time.Second},
			[]time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}},
		{"cap below base", Policy{Base: time.Second, Max: 300 * ms}, []time.Duration{300 * ms, 300 * ms}},
		{"no cap", Policy{Base: ms}, []time.Duration{ms, 2 * ms, 4 * ms, 8 * ms}},
		{"zero base", Policy{Max: time.Second}, []time.Duration{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []time.Duration
			for n := 1; n <= len(tc.want); n++ {
				got = append(got, tc.p.Ceiling(n))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ceilings %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCeilingNeverOverflows(t *testing.T) {
	p := Policy{Base: time.Second}
	prev := time.Duration(0)
	for n := 1; n <= 200; n++ {
		d := p.Ceiling(n)
		if d < prev || d <= 0 {
			t.Fatalf("ceiling %d = %v after %v: overflowed", n, d, prev)
		}
		prev = d
	}
	if d := (Policy{Base: 1 << 40}).Ceiling(100); d != 1<<62 {
		t.Fatalf("a power-of-two base stops at 2^62 ns, got %v", d)
	}
	if p := (Policy{Base: time.Second, Max: time.Hour}); p.Ceiling(1000) != time.Hour {
		t.Fatalf("capped ceiling after 1000 failures = %v", p.Ceiling(1000))
	}
}

func TestCapped(t *testing.T) {
	p := Policy{Base: 100 * ms, Max: 400 * ms}
	got := []bool{p.Capped(1), p.Capped(2), p.Capped(3), p.Capped(4)}
	if !slices.Equal(got, []bool{false, false, true, true}) {
		t.Fatalf("capped %v", got)
	}
	if (Policy{Base: ms}).Capped(100) {
		t.Fatal("a policy without Max is never capped")
	}
}

// TestJitterBounds: every wait lies in [ceiling×(1−jitter), ceiling] and
// never above Max; the extremes of the random source reach both ends.
func TestJitterBounds(t *testing.T) {
	p := Policy{Base: 100 * ms, Max: time.Second, Jitter: DefaultJitter}
	for n := 1; n <= 10; n++ {
		c := p.Ceiling(n)
		lo := c - time.Duration(DefaultJitter*float64(c))
		for range 200 {
			d := p.Delay(n)
			if d < lo || d > c || d > p.Max {
				t.Fatalf("failure %d: wait %v outside [%v, %v]", n, d, lo, c)
			}
		}
		if got := p.jittered(c, func() float64 { return 0 }); got != c {
			t.Errorf("random 0: %v, want the ceiling %v", got, c)
		}
		if got := p.jittered(c, func() float64 { return 0.999999 }); got < lo || got > lo+ms {
			t.Errorf("random ~1: %v, want about %v", got, lo)
		}
	}
	// Jitter spreads the waits: 200 draws are not all equal.
	seen := map[time.Duration]bool{}
	for range 200 {
		seen[p.Delay(3)] = true
	}
	if len(seen) < 2 {
		t.Fatal("jittered waits are all equal")
	}
	for _, j := range []float64{0, -1} {
		if d := (Policy{Base: 100 * ms, Jitter: j}).Delay(2); d != 200*ms {
			t.Errorf("jitter %v: wait %v, want exactly 200ms", j, d)
		}
	}
	if d := (Policy{Base: 100 * ms, Jitter: 7}).jittered(100*ms, func() float64 { return 0.5 }); d != 50*ms {
		t.Errorf("jitter above 1 is 1: %v, want 50ms", d)
	}
}

func TestBackoffReset(t *testing.T) {
	b := New(Policy{Base: 10 * ms, Max: 40 * ms})
	var got []time.Duration
	for range 4 {
		got = append(got, b.Next())
	}
	if want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 40 * ms}; !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
	if b.Failures() != 4 {
		t.Fatalf("failures %d", b.Failures())
	}
	b.Reset()
	if b.Failures() != 0 {
		t.Fatalf("failures after reset %d", b.Failures())
	}
	if d := b.Next(); d != 10*ms {
		t.Fatalf("first wait after reset %v, want the base", d)
	}
}

func TestBackoffJitterUsesRandom(t *testing.T) {
	b := New(Policy{Base: 100 * ms, Jitter: 0.5})
	b.random = func() float64 { return 0.5 }
	if d := b.Next(); d != 75*ms {
		t.Fatalf("wait %v, want 75ms", d)
	}
}
