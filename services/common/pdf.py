"""Printable documents (the requisition register, delivery receipts, the compliance report): A4,
French headings, one layout of titles, paragraphs and tables.

Fonts: DejaVu Sans when the system has it (every character of a name prints), otherwise the PDF
core font with the few characters it lacks replaced.
"""

from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
_CORE = str.maketrans({"—": "-", "–": "-", "’": "'", "…": "...", "→": "->", "•": "-", "œ": "oe", "Œ": "OE"})


class Document(FPDF):
    def __init__(self, title: str, landscape: bool = False, font_dirs: tuple[Path, ...] = FONT_DIRS) -> None:
        super().__init__(orientation="L" if landscape else "P", unit="mm", format="A4")
        self.doc_title = title
        self.family = "helvetica"
        self.unicode = False
        for folder in font_dirs:
            regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
            if regular.exists() and bold.exists():
                self.add_font("dejavu", "", str(regular))
                self.add_font("dejavu", "B", str(bold))
                self.family, self.unicode = "dejavu", True
                break
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(12, 12, 12)
        self.alias_nb_pages()
        self.set_title(title)
        self.set_creator("CSU platform")

    def t(self, value: object) -> str:
        text = "—" if value is None or value == "" else str(value)
        if self.unicode:
            return text
        return text.translate(_CORE).encode("latin-1", "replace").decode("latin-1")

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(self.family, "", 7)
        self.cell(0, 5, self.t(f"{self.doc_title} — page {self.page_no()}/{{nb}}"), align="C")

    def title_block(self, title: str, subtitle: str) -> None:
        self.set_font(self.family, "B", 15)
        self.multi_cell(0, 8, self.t(title), new_x="LMARGIN", new_y="NEXT")
        self.para(subtitle)

    def heading(self, text: str) -> None:
        self.ln(3)
        self.set_font(self.family, "B", 11)
        self.multi_cell(0, 6, self.t(text), new_x="LMARGIN", new_y="NEXT")
        self.set_font(self.family, "", 8)

    def para(self, text: str, size: float = 8.5) -> None:
        self.set_font(self.family, "", size)
        self.multi_cell(0, 4.6, self.t(text), new_x="LMARGIN", new_y="NEXT")

    def pairs(self, rows: list[tuple[str, object]]) -> None:
        self.grid(None, [[k, v] for k, v in rows], [55, 0])

    def grid(self, headings: list[str] | None, rows: list[list[object]], widths: list[float]) -> None:
        """A table; widths in mm, 0 for columns sharing what is left."""
        if not rows:
            self.para("(aucun)")
            return
        total = self.epw
        fixed = sum(w for w in widths if w)
        free = [i for i, w in enumerate(widths) if not w]
        cols = [w or (total - fixed) / max(1, len(free)) for w in widths]
        self.set_font(self.family, "", 7.5)
        with self.table(
            col_widths=cols,
            headings_style=FontFace(emphasis="BOLD", fill_color=(225, 225, 225)),
            line_height=3.8,
            text_align="LEFT",
            first_row_as_headings=headings is not None,
            width=total,
        ) as table:
            if headings is not None:
                table.row([self.t(h) for h in headings])
            for row in rows:
                table.row([self.t(v) for v in row])
        self.ln(2)

    def render(self) -> bytes:
        return bytes(self.output())
