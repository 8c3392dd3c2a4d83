class QuestionAnsweringModelOutput:
    pass


class SequenceClassifierOutput:
    pass


class TokenClassifierOutput:
    pass
