package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/flowctl/flowctl/internal/tap"
)

// paneLines is how many lines the tap or logs pane keeps.
const paneLines = 15

// topModel is flowctl top's terminal UI (bubbletea). It is used through a
// pointer: the tap and logs panes stream from goroutines that hand their
// lines in with send.
type topModel struct {
	ctx      context.Context
	src      liveSource
	interval time.Duration
	send     func(tea.Msg)

	prev   *liveStats
	prevAt time.Time
	rows   []topRow
	ready  bool
	err    error

	selName string
	sortBy  int

	pane       string // "", "tap" or "logs"
	paneComp   string
	paneGen    int
	paneCancel context.CancelFunc
	paneBuf    []string
	paneNote   string
}

type (
	topTick     struct{}
	topStatsMsg struct {
		st  liveStats
		at  time.Time
		err error
	}
	paneLineMsg struct {
		gen  int
		line string
	}
	paneEndMsg struct {
		gen int
		err error
	}
)

func newTopModel(ctx context.Context, src liveSource, interval time.Duration) *topModel {
	return &topModel{ctx: ctx, src: src, interval: interval}
}

func (m *topModel) Init() tea.Cmd { return tea.Batch(m.fetch(), m.tick()) }

func (m *topModel) tick() tea.Cmd {
	return tea.Tick(m.interval, func(time.Time) tea.Msg { return topTick{} })
}

func (m *topModel) fetch() tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
		defer cancel()
		st, err := m.src.Stats(ctx)
		return topStatsMsg{st: st, at: time.Now(), err: err}
	}
}

func (m *topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case topTick:
		return m, tea.Batch(m.fetch(), m.tick())
	case topStatsMsg:
		m.err = msg.err
		if msg.err != nil {
			return m, nil
		}
		if m.prev != nil {
			m.rows = topRows(m.prev, msg.st, msg.at.Sub(m.prevAt))
			m.ready = true
		} else {
			m.rows = topRows(nil, msg.st, 0)
		}
		sortRows(m.rows, m.sortBy)
		st := msg.st
		m.prev, m.prevAt = &st, msg.at
		if m.selName == "" && len(m.rows) > 0 {
			m.selName = m.rows[0].name
		}
	case paneLineMsg:
		if msg.gen == m.paneGen {
			m.paneBuf = append(m.paneBuf, msg.line)
			if len(m.paneBuf) > paneLines {
				m.paneBuf = m.paneBuf[len(m.paneBuf)-paneLines:]
			}
		}
	case paneEndMsg:
		if msg.gen == m.paneGen && msg.err != nil {
			m.paneNote = msg.err.Error()
		}
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "ctrl+c":
			m.stopPane()
			return m, tea.Quit
		case "up", "k":
			m.move(-1)
		case "down", "j":
			m.move(1)
		case "s":
			m.sortBy = (m.sortBy + 1) % len(topSorts)
			sortRows(m.rows, m.sortBy)
		case "t":
			m.openPane("tap")
		case "l":
			m.openPane("logs")
		case "esc":
			m.stopPane()
			m.pane = ""
		}
	}
	return m, nil
}

// move changes the selected row by d.
func (m *topModel) move(d int) {
	i := m.selected()
	if len(m.rows) == 0 {
		return
	}
	i = (i + d + len(m.rows)) % len(m.rows)
	m.selName = m.rows[i].name
}

func (m *topModel) selected() int {
	for i, r := range m.rows {
		if r.name == m.selName {
			return i
		}
	}
	return 0
}

// openPane starts streaming the selected component's tap or logs.
func (m *topModel) openPane(kind string) {
	if len(m.rows) == 0 {
		return
	}
	m.stopPane()
	comp := m.rows[m.selected()].name
	m.pane, m.paneComp, m.paneBuf, m.paneNote = kind, comp, nil, ""
	m.paneGen++
	gen := m.paneGen
	ctx, cancel := context.WithCancel(m.ctx)
	m.paneCancel = cancel
	send := m.send
	if send == nil {
		send = func(tea.Msg) {}
	}
	src := m.src
	go func() {
		var err error
		if kind == "tap" {
			err = src.Tap(ctx, tap.Request{Points: []string{comp}}, func(r tap.Record) error {
				switch {
				case r.Event != nil:
					send(paneLineMsg{gen, tapLine(r.Event)})
				case r.Dropped > 0:
					send(paneLineMsg{gen, fmt.Sprintf("(%d events dropped so far: the tap could not keep up)", r.Dropped)})
				}
				return nil
			})
		} else {
			err = src.Logs(ctx, comp, func(line string) error {
				send(paneLineMsg{gen, line})
				return nil
			})
		}
		if ctx.Err() == nil {
			send(paneEndMsg{gen, err})
		}
	}()
}

// tapLine is an event on one line of the pane.
func tapLine(ev *tap.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s id=%s", ev.Point, ev.ID)
	if ev.Type != "" {
		fmt.Fprintf(&b, " type=%s", ev.Type)
	}
	if len(ev.Data) > 0 {
		b.WriteByte(' ')
		b.Write(ev.Data)
	}
	return b.String()
}

func (m *topModel) stopPane() {
	if m.paneCancel != nil {
		m.paneCancel()
		m.paneCancel = nil
	}
}

func (m *topModel) View() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flowctl top %s — every %s, sorted by %s", m.src.Name(), m.interval, topSorts[m.sortBy])
	if m.prev != nil {
		fmt.Fprintf(&b, " — up %s", (time.Duration(m.prev.ElapsedSeconds * float64(time.Second))).Round(time.Second))
		if m.prev.Finished {
			b.WriteString(" — finished")
		}
	}
	b.WriteString("\n\n")
	if m.err != nil {
		fmt.Fprintf(&b, "  %v\n\n", m.err)
	}
	if len(m.rows) == 0 && m.err == nil {
		b.WriteString("  waiting for the first counters…\n")
	}
	renderTable(&b, m.rows, m.selected())
	b.WriteString("\n  ↑/↓ select · s sort · t tap · l logs · esc close · q quit\n")
	if m.pane != "" {
		fmt.Fprintf(&b, "\n  %s of %s:\n", m.pane, m.paneComp)
		for _, l := range m.paneBuf {
			fmt.Fprintf(&b, "  %s\n", clip(l, 150))
		}
		if m.paneNote != "" {
			fmt.Fprintf(&b, "  %s\n", m.paneNote)
		}
	}
	return b.String()
}
