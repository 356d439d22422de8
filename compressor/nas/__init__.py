"""Architecture search for students: AdaBERT's differentiable search of a `cnn` student's
cell and depth (`search.adabert_search`), over the search network of `supernet` and the
teacher-layer probes of `probes`."""

from compressor.nas.search import SearchResult, adabert_search, architecture_cost

__all__ = ["SearchResult", "adabert_search", "architecture_cost"]
