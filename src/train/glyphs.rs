//! A 3×5 pixel font (digits, lowercase letters, a few signs) so that plots and sample sheets can
//! carry labels without a font file. Uppercase letters are drawn as lowercase.

/// Rows top to bottom, 3 bits each (bit 2 = left column).
fn rows(c: char) -> [u8; 5] {
    match c.to_ascii_lowercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'a' => [2, 5, 7, 5, 5],
        'b' => [6, 5, 6, 5, 6],
        'c' => [3, 4, 4, 4, 3],
        'd' => [6, 5, 5, 5, 6],
        'e' => [7, 4, 6, 4, 7],
        'f' => [7, 4, 6, 4, 4],
        'g' => [3, 4, 5, 5, 3],
        'h' => [5, 5, 7, 5, 5],
        'i' => [7, 2, 2, 2, 7],
        'j' => [1, 1, 1, 5, 2],
        'k' => [5, 5, 6, 5, 5],
        'l' => [4, 4, 4, 4, 7],
        'm' => [5, 7, 7, 5, 5],
        'n' => [6, 5, 5, 5, 5],
        'o' => [2, 5, 5, 5, 2],
        'p' => [6, 5, 6, 4, 4],
        'q' => [2, 5, 5, 6, 3],
        'r' => [6, 5, 6, 5, 5],
        's' => [3, 4, 2, 1, 6],
        't' => [7, 2, 2, 2, 2],
        'u' => [5, 5, 5, 5, 7],
        'v' => [5, 5, 5, 5, 2],
        'w' => [5, 5, 7, 7, 5],
        'x' => [5, 5, 2, 5, 5],
        'y' => [5, 5, 2, 2, 2],
        'z' => [7, 1, 2, 4, 7],
        '.' => [0, 0, 0, 0, 2],
        '_' => [0, 0, 0, 0, 7],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        ':' => [0, 2, 0, 2, 0],
        '=' => [0, 7, 0, 7, 0],
        '/' => [1, 1, 2, 4, 4],
        '|' => [2, 2, 2, 2, 2],
        _ => [0; 5],
    }
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * 4 * scale
}

/// Draws `text` with its top-left corner at (x, y) into an RGB buffer of `width`×`height`,
/// clipping at the edges.
pub fn draw_text(
    rgb: &mut [u8],
    width: u32,
    height: u32,
    (x, y): (i64, i64),
    text: &str,
    scale: u32,
    colour: [u8; 3],
) {
    let s = scale as i64;
    for (k, c) in text.chars().enumerate() {
        let x0 = x + k as i64 * 4 * s;
        for (r, bits) in rows(c).iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) == 0 {
                    continue;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        let px = x0 + col * s + dx;
                        let py = y + r as i64 * s + dy;
                        if px >= 0 && py >= 0 && (px as u32) < width && (py as u32) < height {
                            let i = 3 * (py as usize * width as usize + px as usize);
                            rgb[i..i + 3].copy_from_slice(&colour);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_inside_and_clips_outside() {
        let (w, h) = (12u32, 6u32);
        let mut buf = vec![0u8; (w * h * 3) as usize];
        draw_text(&mut buf, w, h, (0, 0), "1", 1, [255, 0, 0]);
        // '1' row 0 is 010: only the middle column lit.
        assert_eq!(&buf[0..3], &[0, 0, 0]);
        assert_eq!(&buf[3..6], &[255, 0, 0]);
        // Far outside: nothing drawn, no panic.
        draw_text(&mut buf, w, h, (-100, 100), "abc", 3, [1, 2, 3]);
        assert_eq!(text_width("abc", 2), 24);
        assert!(rows('Q') == rows('q') && rows('?') == [0; 5]);
    }
}
