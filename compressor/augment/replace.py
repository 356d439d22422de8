"""TinyBERT's word replacement (Jiao et al. 2020, sec. 3.3): a masked LM's top-K guesses
for single-piece words, nearest word-embedding neighbours for the rest (or for every word
when the model has no MLM head)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, PreTrainedModel, PreTrainedTokenizerBase

from compressor.augment.perturb import Position, chunks
from compressor.errors import UserError
from compressor.models import load_tokenizer, resolve_model_dir
from compressor.progress import LoggedProgress, LogLine
from compressor.recipe import AugmentConfig

WORD_START_MARKS = "Ġ▁"  # word-start marks of byte-level BPE / SentencePiece vocabularies
NEIGHBOUR_CHUNK = 256  # query rows per similarity matmul: bounds memory at chunk x vocab


def load_mlm(model: str | Path) -> tuple[PreTrainedModel, list[str]]:
    """A masked LM and the weights its folder lacked (randomly initialised)."""
    model_dir = resolve_model_dir(model)
    try:
        mlm, loading = AutoModelForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"could not load {model} as a masked LM ({exc.__class__.__name__}) — set "
            "augment.mlm_model to a masked-LM folder or hub id; this machine may be offline"
        ) from exc
    return mlm, [k for k in loading["missing_keys"] if not k.endswith("position_ids")]


def make_replacer(
    teacher_dir: str | Path,
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    cfg: AugmentConfig,
    device: torch.device,
) -> tuple[str, Replacer]:
    """The candidate source: `mlm_model`, else the teacher's MLM head, else the teacher's
    word embeddings (a classifier folder has no head; see the module docstring)."""
    if cfg.mlm_model is not None:
        mlm, missing = load_mlm(cfg.mlm_model)
        if missing:
            raise UserError(
                f"augment.mlm_model {cfg.mlm_model} has no masked-LM head (missing "
                f"{missing[0]}, ...) — pass a pre-trained masked LM, or unset mlm_model to "
                "use the teacher's word-embedding neighbours"
            )
        mlm_tokenizer = load_tokenizer(resolve_model_dir(cfg.mlm_model))
        return "mlm", Replacer(mlm_tokenizer, mlm.to(device).eval(), cfg.candidates)
    mlm, missing = load_mlm(teacher_dir)
    if missing:
        return "embedding-neighbours", Replacer(tokenizer, teacher, cfg.candidates, mlm=False)
    return "mlm", Replacer(tokenizer, mlm.to(device).eval(), cfg.candidates)


class Replacer:
    """TinyBERT's candidate sets (sec. 3.3): the masked LM's top-K words for a word that is
    one word piece, masked in its sentence; the K nearest word-embedding neighbours of its
    first piece otherwise (or for every word when `mlm` is False)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
        k: int,
        *,
        mlm: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.mlm = mlm
        self.embeddings = model.get_input_embeddings().weight.detach()
        self.allowed = word_tokens(tokenizer, self.embeddings.shape[0]).to(model.device)
        self.allowed_ids = self.allowed.tolist()
        self.n_allowed = sum(self.allowed_ids)
        self.k = k
        self._words: dict[int, str] = {}

    def candidates(
        self,
        texts: list[str],
        positions: set[Position],
        progress: LoggedProgress,
        *,
        max_length: int,
        batch_size: int,
    ) -> dict[Position, list[str]]:
        """Replacement words per (example, word); words with none (unknown to the
        vocabulary) are left out and so kept as they are."""
        sentences = {i: texts[i].split() for i, _ in positions}
        vocab = sorted({w for words in sentences.values() for w in words})
        if not vocab:
            return {}
        encoded = self.tokenizer([" " + w for w in vocab], add_special_tokens=False)
        pieces = dict(zip(vocab, encoded["input_ids"], strict=True))
        masked, by_piece = [], {}
        for i, j in sorted(positions):
            word_pieces = pieces[sentences[i][j]]
            if not word_pieces or not self.allowed_ids[word_pieces[0]]:
                continue
            if self.mlm and len(word_pieces) == 1:
                masked.append((i, j))
            else:
                by_piece[(i, j)] = word_pieces[0]
        neighbours = self._neighbours(sorted(set(by_piece.values())))
        found = {position: neighbours[piece] for position, piece in by_piece.items()}
        layouts = {i: word_layout(sentences[i], pieces) for i, _ in masked}
        task = progress.add_task(
            "masked-LM candidates", total=len(masked), log=LogLine(items="words")
        )
        masked.sort(key=lambda position: len(layouts[position[0]][0]))
        for batch in chunks(masked, batch_size):
            found.update(self._predict(batch, layouts, max_length))
            progress.advance(task, len(batch))
        return found

    @torch.no_grad()
    def _predict(
        self,
        batch: Sequence[Position],
        layouts: dict[int, tuple[list[int], list[int]]],
        max_length: int,
    ) -> dict[Position, list[str]]:
        """Top-K words at each masked position, one masked word per sentence; sentences
        longer than the model's window are cut to a window around the word."""
        budget = max_length - self.tokenizer.num_special_tokens_to_add(pair=False)
        prefix = self.tokenizer.build_inputs_with_special_tokens([-1]).index(-1)
        rows, targets = [], []
        for i, j in batch:
            body, starts = layouts[i]
            lo = min(max(0, starts[j] - budget // 2), max(0, len(body) - budget))
            window = body[lo : lo + budget]
            window[starts[j] - lo] = self.tokenizer.mask_token_id
            rows.append(self.tokenizer.build_inputs_with_special_tokens(window))
            targets.append(prefix + starts[j] - lo)
        ids = torch.full((len(rows), max(map(len, rows))), self.tokenizer.pad_token_id)
        attention = torch.zeros_like(ids)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            attention[r, : len(row)] = 1
        device = self.model.device
        logits = self.model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
        rows_at = torch.arange(len(rows), device=device)
        logits = logits[rows_at, torch.tensor(targets, device=device)].masked_fill(
            ~self.allowed, -torch.inf
        )
        top = logits.topk(min(self.k, self.n_allowed)).indices.tolist()
        return {position: self._to_words(best) for position, best in zip(batch, top, strict=True)}

    @torch.no_grad()
    def _neighbours(self, pieces: list[int]) -> dict[int, list[str]]:
        """The K pieces nearest each piece by cosine, itself excluded."""
        unit = torch.nn.functional.normalize(self.embeddings.float(), dim=-1)
        k = min(self.k, self.n_allowed - 1)
        found = {}
        for chunk in chunks(pieces, NEIGHBOUR_CHUNK):
            query = torch.tensor(chunk, device=unit.device)
            sims = (unit[query] @ unit.T).masked_fill(~self.allowed, -torch.inf)
            sims[torch.arange(len(chunk), device=unit.device), query] = -torch.inf
            for piece, top in zip(chunk, sims.topk(k).indices.tolist(), strict=True):
                found[piece] = self._to_words(top)
        return found

    def _to_words(self, ids: list[int]) -> list[str]:
        for i in ids:
            if i not in self._words:
                token = self.tokenizer.convert_ids_to_tokens(i)
                self._words[i] = self.tokenizer.convert_tokens_to_string([token]).strip()
        return [self._words[i] for i in ids]


def word_layout(words: list[str], pieces: dict[str, list[int]]) -> tuple[list[int], list[int]]:
    """A sentence's piece ids and the index of each word's first piece."""
    body, starts = [], []
    for word in words:
        starts.append(len(body))
        body.extend(pieces[word])
    return body, starts


def word_tokens(tokenizer: PreTrainedTokenizerBase, rows: int) -> torch.Tensor:
    """Which ids can stand for a whole word: not special tokens or placeholders like
    BERT's [unused0], and not continuation pieces ('##…' in WordPiece; pieces without the
    word-start mark in byte-level BPE / SentencePiece vocabularies)."""
    probe = tokenizer.tokenize(" the")
    marker = probe[0][0] if probe and probe[0][0] in WORD_START_MARKS else None
    special = set(tokenizer.all_special_ids)
    allowed = torch.zeros(rows, dtype=torch.bool)
    size = min(rows, len(tokenizer))
    for i, token in enumerate(tokenizer.convert_ids_to_tokens(list(range(size)))):
        if i in special or not token or (len(token) > 2 and token[0] + token[-1] in ("[]", "<>")):
            continue
        allowed[i] = len(token) > 1 and token[0] == marker if marker else token[:2] != "##"
    return allowed
