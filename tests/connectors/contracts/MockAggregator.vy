# pragma version ~=0.4.3
# Chainlink AggregatorV3Interface test double (owner-only updates), compiled inside the tests.

struct Round:
    answer: int256
    startedAt: uint256
    updatedAt: uint256
    answeredInRound: uint80

event AnswerUpdated:
    current: indexed(int256)
    roundId: indexed(uint256)
    updatedAt: uint256

owner: public(address)
decimals: public(uint8)
description: public(String[64])
version: public(uint256)
latestRound: public(uint80)
rounds: HashMap[uint80, Round]

@deploy
def __init__(_decimals: uint8, _description: String[64], _initial: int256):
    self.owner = msg.sender
    self.decimals = _decimals
    self.description = _description
    self.version = 4
    self._update(_initial, block.timestamp, 0)

@internal
def _update(_answer: int256, _updatedAt: uint256, _answeredInRound: uint80):
    rid: uint80 = self.latestRound + 1
    air: uint80 = rid
    if _answeredInRound != 0:
        air = _answeredInRound
    self.latestRound = rid
    self.rounds[rid] = Round(answer=_answer, startedAt=block.timestamp, updatedAt=_updatedAt, answeredInRound=air)
    log AnswerUpdated(current=_answer, roundId=convert(rid, uint256), updatedAt=_updatedAt)

@external
def updateAnswer(_answer: int256):
    assert msg.sender == self.owner, "not owner"
    self._update(_answer, block.timestamp, 0)

@external
def updateRoundData(_answer: int256, _updatedAt: uint256, _answeredInRound: uint80):
    assert msg.sender == self.owner, "not owner"
    self._update(_answer, _updatedAt, _answeredInRound)

@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    rid: uint80 = self.latestRound
    r: Round = self.rounds[rid]
    return (rid, r.answer, r.startedAt, r.updatedAt, r.answeredInRound)

@view
@external
def getRoundData(_roundId: uint80) -> (uint80, int256, uint256, uint256, uint80):
    r: Round = self.rounds[_roundId]
    assert r.updatedAt != 0, "No data present"
    return (_roundId, r.answer, r.startedAt, r.updatedAt, r.answeredInRound)
