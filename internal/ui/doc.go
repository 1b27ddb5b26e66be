// Package ui is flowctl's web dashboard: an embedded, dependency-free page
// (HTML, JavaScript and CSS under static/, no build step) and the JSON
// endpoints it reads. `flowctl run --http ADDR` serves it at / next to
// /metrics.
//
// The page is read-only. It draws the pipeline's graph (laid out here, by
// topological rank: one column per rank), polls the run's live counters
// every second to show rates, queue fill, health and failures, and opens a
// live tap of a component when it is clicked.
//
// The tap shows event data, so everything Handler serves needs the token:
// a cookie the page gets by opening /?token=TOKEN once (the URL the run
// prints), or an "Authorization: Bearer TOKEN" header. Anything else gets
// 401. /metrics, /healthz and /readyz are not served here and stay open.
package ui
