//! One colour per output cell, shared by the terminal and the pictures.

/// Distinct, colour-blind-friendly hues (Okabe–Ito and Tableau), cycled.
const HEX: [&str; 16] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#7F3C8D", "#3969AC", "#E73F74",
    "#11A579", "#F2B701", "#80BA5A", "#008695", "#CF1C90", "#4B4B8F",
];
const ANSI: [u8; 16] = [25, 166, 35, 175, 214, 74, 94, 97, 61, 168, 36, 220, 107, 30, 162, 60];

/// The colour of output `o`, as `#rrggbb`.
pub fn hex(o: usize) -> &'static str {
    HEX[o % HEX.len()]
}

/// The colour of output `o`, as an ANSI 256-colour code.
pub fn ansi(o: usize) -> u8 {
    ANSI[o % ANSI.len()]
}
