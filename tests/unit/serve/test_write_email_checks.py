"""The Write page's fact check on drafts as the embedded 1.5B model writes them (title-cased subjects)."""

from compound.serve.write_email import EmailDraft, invented_facts


def draft(subject: str, body: str, greeting: str = "Hi Ana,") -> EmailDraft:
    return EmailDraft(subject=subject, greeting=greeting, body=body, sign_off="Best regards,")


def test_a_title_cased_subject_is_not_taken_for_names():
    box = "Ana, team lunch moved to Friday, warm"
    body = "I wanted to let you know that our team lunch has moved to Friday. See you there."
    assert invented_facts(draft("Team Lunch Update", body), box) == []
    assert (
        invented_facts(
            draft("Quick Reminder About The Report", "The report is due. Thanks a lot.", "Hi team,"), "report due"
        )
        == []
    )


def test_names_numbers_and_dates_from_outside_the_box_are_still_found():
    box = "Ana, team lunch moved to Friday, warm"
    body = "Our lunch moved to Friday at 12:30. On Monday, our friend Bob will bring the cake."
    assert invented_facts(draft("Lunch moved", body), box) == ["12:30", "monday", "bob"]
    # a title-cased subject still has its numbers and date words checked
    assert invented_facts(draft("Lunch On Tuesday At 1pm", "Our lunch moved to Friday, see you."), box) == [
        "tuesday",
        "1",
    ]
    # a sentence with one capitalised word in the middle is not title case: the name is found
    assert invented_facts(draft("Lunch", "I asked Maria about the lunch on Friday."), box) == ["maria"]


def test_may_and_march_in_lower_case_are_verbs_not_months():
    box = "Tom, I can't make it to the gym tomorrow, apologetic"
    body = "I can't make it to the gym tomorrow. I apologize for any trouble this may cause; we march on."
    assert invented_facts(draft("Gym tomorrow", body, "Hi Tom,"), box) == []
    assert invented_facts(draft("Gym tomorrow", "See you in May, Tom.", "Hi Tom,"), box) == ["may"]


def test_a_name_in_the_greeting_is_checked_though_the_greeting_is_two_capitalised_words():
    box = "landlord, the kitchen tap is leaking again, polite but firm"
    body = "The kitchen tap is leaking again. Please have it fixed this week."
    assert invented_facts(draft("Kitchen Tap Leaking", body, "Hi John,"), box) == ["john"]
