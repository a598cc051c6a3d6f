package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// bar is one labelled value of a chart panel.
type bar struct {
	label string
	value float64
	tool  string
}

type panel struct {
	title string
	unit  string
	bars  []bar
}

// writeChart draws horizontal bar panels: throughput per tool for upload and download,
// and peak RSS per tool for upload, from the results.
func writeChart(path string, res *Results) error {
	t := tableOf(res)
	var panels []panel
	add := func(title, unit, sc string, val func(*row) float64) {
		p := panel{title: title, unit: unit}
		for _, r := range t.scenario(sc) {
			if v := val(r); !math.IsNaN(v) {
				p.bars = append(p.bars, bar{label: r.tool + " (" + r.variant + ")", value: v, tool: r.tool})
			}
		}
		if len(p.bars) > 0 {
			panels = append(panels, p)
		}
	}
	up := sizeOf(res, "upload")
	add("Upload "+up+": throughput, median (higher is better)", "MiB/s", "upload", (*row).mibps)
	add("Download "+up+": throughput, median (higher is better)", "MiB/s", "download", (*row).mibps)
	add("Upload "+up+": peak RSS of the client (lower is better)", "MiB", "upload", (*row).peakRSS)
	add("Upload "+up+": client CPU user+sys, median (lower is better)", "s", "upload", (*row).cpu)
	add("Stream upload "+sizeOf(res, "stream")+" (stdin vs file): throughput, median (higher is better)", "MiB/s", "stream", (*row).mibps)
	if len(panels) == 0 {
		fmt.Fprintln(os.Stderr, "bench: chart: no upload or download results: no chart")
		return nil
	}
	const (
		width  = 1000
		labelW = 230
		barH   = 16
		gap    = 4
		titleH = 28
		padB   = 16
	)
	height := 10
	for _, p := range panels {
		height += titleH + len(p.bars)*(barH+gap) + padB
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	text := func(x, y int, s string, c color.Color) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	colorOf := func(tool string) color.RGBA {
		switch tool {
		case s3xferLib:
			return color.RGBA{31, 119, 180, 255}
		case s3xferCLI:
			return color.RGBA{90, 160, 220, 255}
		case ceilingT:
			return color.RGBA{44, 160, 44, 255}
		}
		if isBaseline(tool) {
			return color.RGBA{170, 200, 230, 255}
		}
		return color.RGBA{150, 150, 150, 255}
	}
	y := 10
	for _, p := range panels {
		text(10, y+16, p.title, color.Black)
		y += titleH
		maxV := 0.0
		for _, b := range p.bars {
			maxV = max(maxV, b.value)
		}
		span := float64(width - labelW - 90)
		for _, b := range p.bars {
			text(10, y+12, b.label, color.Black)
			w := int(span * b.value / maxV)
			draw.Draw(img, image.Rect(labelW, y, labelW+max(w, 1), y+barH), image.NewUniform(colorOf(b.tool)), image.Point{}, draw.Src)
			prec := 1
			if b.value >= 100 {
				prec = 0
			}
			text(labelW+w+6, y+12, fmt.Sprintf("%.*f %s", prec, b.value, p.unit), color.Black)
			y += barH + gap
		}
		y += padB
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(fh, img); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}
