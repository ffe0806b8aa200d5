"""How a request is answered once decoded: lanes of stages, and the strategies that pick a lane.

A *lane* is one loaded model behind its stages (cache, batch, engine; ``lane``). A *strategy*
(``strategy``: one model; ``shadowed``: a shadow beside it; ``arms``: a bandit's arms) chooses
the lane that answers each request, and may wrap it. The server decodes with the chosen lane's
signature and encodes what it answered; it never asks which strategy runs. Framework-free.
"""
