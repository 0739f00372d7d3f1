"""The case loop's decisions (cases/loop/states.py decide): who may do what in which state."""

from __future__ import annotations

import pytest

from cases.loop import states as st
from cases.loop.taxonomy import Taxonomy, TaxonomyError
from common.errors import DomainError

AGENT = st.Actor("a", "agent")
SUP = st.Actor("s", "supervisor")
DEPT = st.Actor("d", "department", "cg")
OTHER = st.Actor("o", "department", "rs")


def view(state: str, *dispatches: tuple[str, str, str], classified: bool = True
         ) -> st.WorkView:
    return st.WorkView(state, classified, 1,
                       tuple(st.DispatchView(d, r, s) for d, r, s in dispatches))


def code(work: st.WorkView, actor: st.Actor, cmd: st.Command) -> str:
    with pytest.raises(DomainError) as e:
        st.decide(work, actor, cmd)
    return e.value.code


def test_dispatch_needs_classification_lead_and_the_hotline():
    assert code(view("accepted", classified=False), AGENT,
                st.Command("dispatch", lead="cg")) == "invalid"
    assert code(view("accepted"), AGENT, st.Command("dispatch")) == "invalid"
    assert code(view("accepted"), DEPT, st.Command("dispatch", lead="cg")) == "forbidden"
    d = st.decide(view("accepted"), AGENT, st.Command("dispatch", lead="cg", assist=("rs",)))
    assert d.state == "dispatched" and d.new_round


def test_only_the_department_dispatched_to_signs_and_assist_does_not_move_the_case():
    w = view("dispatched", ("cg", "lead", "pending"), ("rs", "assist", "pending"))
    assert st.decide(w, DEPT, st.Command("sign")).state == "handling"
    assert st.decide(w, OTHER, st.Command("sign")).state == "dispatched"
    assert code(w, st.Actor("x", "department", "water"), st.Command("sign")) == "forbidden"
    assert code(w, AGENT, st.Command("sign")) == "forbidden"


def test_lead_return_cancels_assistants_and_needs_a_reason():
    w = view("dispatched", ("cg", "lead", "signed"), ("rs", "assist", "signed"))
    assert code(w, DEPT, st.Command("return")) == "invalid"
    d = st.decide(w, DEPT, st.Command("return", reason="不属本单位"))
    assert d.state == "returned" and d.dispatch_states == {"cg": "returned", "rs": "cancelled"}


def test_reply_review_follow_up_and_reopen():
    w = view("handling", ("cg", "lead", "signed"))
    assert code(w, DEPT, st.Command("reply")) == "invalid"
    assert st.decide(w, DEPT, st.Command("reply", reason="已处理")).state == "replied"
    r = view("replied", ("cg", "lead", "replied"))
    assert code(r, AGENT, st.Command("review", accept=False)) == "invalid"
    back = st.decide(r, SUP, st.Command("review", accept=False, reason="未答复到位"))
    assert back.state == "handling" and back.dispatch_states == {"cg": "signed"}
    f = view("follow_up", ("cg", "lead", "replied"))
    ok = st.decide(f, AGENT, st.Command("follow_up", resolved=True, satisfaction="basic"))
    assert ok.state == "closed" and ok.closed_how == "follow_up"
    again = st.decide(f, AGENT, st.Command("follow_up", resolved=True,
                                           satisfaction="unsatisfied"))
    assert again.state == "dispatched" and again.reopened and again.new_round
    gone = st.decide(f, st.Actor("sys", "system"), st.Command("follow_up", reached=False))
    assert gone.state == "closed"
    assert code(view("closed", ("cg", "lead", "replied")), AGENT,
                st.Command("reopen", reason="x")) == "forbidden"
    assert st.decide(view("closed", ("cg", "lead", "replied")), SUP,
                     st.Command("reopen", reason="群众再次反映")).reopened


def test_extensions_are_asked_by_a_signed_department_and_decided_by_a_supervisor():
    w = view("handling", ("cg", "lead", "signed"))
    assert code(w, DEPT, st.Command("request_extension", days=3)) == "invalid"
    assert st.decide(w, DEPT, st.Command("request_extension", days=3, reason="待检测"))
    asked = st.WorkView("handling", True, 1, (st.DispatchView("cg", "lead", "signed",
                                                              "requested"),))
    assert code(asked, DEPT, st.Command("request_extension", days=3, reason="x")) == "conflict"
    assert code(asked, AGENT, st.Command("decide_extension", accept=True)) == "forbidden"
    assert st.decide(asked, SUP, st.Command("decide_extension", accept=True)).state == "handling"


def test_closed_and_merged_cases_refuse_changes():
    assert code(view("merged"), SUP, st.Command("reopen", reason="x")) == "conflict"
    assert code(view("closed"), AGENT, st.Command("classify")) == "conflict"
    assert st.decide(view("accepted"), AGENT, st.Command("merge")).state == "merged"
    assert code(view("handling", ("cg", "lead", "signed")), AGENT,
                st.Command("merge")) == "conflict"


def test_taxonomy_default_and_errors_name_the_entry():
    t = Taxonomy.load()
    assert t.appeal_types["praise"] == "表扬"
    assert t.check("complaint", "utilities.water.outage") == []
    assert t.path_names("utilities.water.outage") == "公用事业 › 供水 › 停水"
    with pytest.raises(TaxonomyError, match=r"matters\.a\.name"):
        Taxonomy.from_dict({"appeal_types": {"x": "y"}, "matters": {"a": {}}})


def test_a_province_replaces_the_default_tree_with_its_own_file(tmp_path):
    import json

    f = tmp_path / "matters.json"
    f.write_text(json.dumps({"appeal_types": {"consultation": "咨询", "complaint": "投诉"},
                             "matters": {"gov": {"name": "政务服务", "children": {
                                 "hall": {"name": "办事大厅"}}}}}), encoding="utf-8")
    t = Taxonomy.load(f)
    assert t.leaves() == ["gov.hall"] and t.path_names("gov.hall") == "政务服务 › 办事大厅"
    assert t.check("help", "gov.hall") == ["appeal_type: unknown 'help'"]
    with pytest.raises(TaxonomyError, match=r"matters\.json"):
        Taxonomy.load(tmp_path / "matters.json.missing")
